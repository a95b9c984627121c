"""``seglab review``: a worst-first, offline error browser of a model on a split (or of saved predictions).

``review_checkpoint(model, info, data, split)`` and ``review_predictions(predictions, data, split)`` write
``review/index.html`` (one self-contained page), ``images.json`` and ``images.csv``; see docs/review.md.
"""

from seglab.review.api import ReviewResult, review, review_checkpoint, review_predictions, write_review
from seglab.review.kinds import KINDS, error_kinds
from seglab.review.stats import DatasetStats, expected_calibration_error

__all__ = ["KINDS", "DatasetStats", "ReviewResult", "error_kinds", "expected_calibration_error", "review",
           "review_checkpoint", "review_predictions", "write_review"]
