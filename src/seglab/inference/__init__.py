"""Use a trained model: predict (whole, tiled, TTA), evaluate, and write everything ``seglab predict`` writes.

The names a user needs are re-exported here, so ``from seglab.inference import predict`` keeps working
whichever module holds them.
"""

from __future__ import annotations

from seglab.inference.evaluation import Evaluation, evaluate_checkpoint
from seglab.inference.instance import (
    STAT_KEYS,
    detect_dataset,
    instances_to_coco,
    predict_instances,
    score_detections,
    split_ground_truth,
)
from seglab.inference.outputs import FORMATS, PredictOptions, PredictResult, predict_files
from seglab.inference.semantic import evaluate, predict, predict_many, predict_tiled
from seglab.inference.source import ImageLike, eval_mode, prepare_image
from seglab.inference.tiling import BLENDS, TileOptions
from seglab.inference.tta import TTA, model_output, parse_tta, predict_batch
from seglab.models.registry import is_instance_model

__all__ = ["BLENDS", "FORMATS", "Evaluation", "PredictOptions", "PredictResult", "evaluate_checkpoint",
           "predict_files", "STAT_KEYS", "TTA", "ImageLike", "TileOptions", "detect_dataset", "eval_mode", "evaluate",
           "instances_to_coco", "is_instance_model", "model_output", "parse_tta", "predict", "predict_batch",
           "predict_instances", "predict_many", "predict_tiled", "prepare_image", "score_detections",
           "split_ground_truth"]
