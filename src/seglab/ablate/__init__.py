"""``seglab ablate``: a grid (or list) of config variations x seeds, trained and compared with honest statistics.

``run_ablation`` trains (resumable), ``write_report`` writes ``report.md`` with paired confidence intervals,
``curves.png`` and ``predictions.png``. See docs/ablate.md.
"""

from __future__ import annotations

from seglab.ablate.grid import Variation, parse_vary, variants
from seglab.ablate.report import write_report
from seglab.ablate.runner import RunResult, run_ablation

__all__ = ["RunResult", "Variation", "parse_vary", "run_ablation", "variants", "write_report"]
