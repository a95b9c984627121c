"""`seglab evaluate RUN --refine sam`: the model's scores before and after SAM redraws its boundaries.

Refinement helps on some data and hurts on other (SAM follows image edges, which are not always the label's
edges), so the user sees both numbers on their own split before using ``predict --refine sam``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from seglab.cli.app import console
from seglab.cli.progress import progress_bar


def evaluate_refined(run: Path, data: Path, split: str, json_out: Path | None, refine: str,
                     sam_checkpoint: Path | None, sam_model: str, device: str, given: dict[str, Any]) -> None:
    """Score ``run`` on ``data``'s ``split`` with and without SAM refinement; print and optionally save both."""
    from seglab.checkpoint import load_checkpoint
    from seglab.distributed import resolve_device
    from seglab.errors import ConfigError
    from seglab.fileio import atomic_write_text, check_output_path

    if refine != "sam":
        raise ConfigError(f"--refine {refine!r}: the one refiner is sam.")
    flags = [flag for flag, value in given.items() if value is not None]
    if flags:
        raise ConfigError(f"{', '.join(flags)}: not available with --refine sam (it scores the plain prediction "
                          f"and its refinement). Drop {' and '.join(flags)}.")
    if sam_checkpoint is None:
        raise ConfigError("--refine sam needs --sam-checkpoint PATH (the SAM weights you downloaded; `seglab sam "
                          "types` lists the file of each type).")
    if json_out is not None:
        from seglab.data.layout import DATASET_PARTS
        from seglab.fileio import refuse_overwrite

        check_output_path(json_out, flag="--json")
        refuse_overwrite([json_out], [run, sam_checkpoint, *(data / part for part in DATASET_PARTS)], flag="--json")
    from seglab.sam import evaluate_refinement, load_sam, require_segment_anything

    require_segment_anything()
    dev = resolve_device(device)
    model, info = load_checkpoint(run, device=dev)
    sam = load_sam(sam_checkpoint, sam_model, device=dev)
    with progress_bar(f"evaluate {split} (plain and refined)") as callback:
        report = evaluate_refinement(model, info, data, split, sam, callback=callback)
    table = Table(title=f"{info.path} on {data} ({split}, {report['num_images']} images): SAM refinement",
                  show_header=True)
    for col in ("metric", "model", "refined by SAM", "change"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, before in report["before"].items():
        after = report["after"].get(key)
        if isinstance(before, (int, float)) and isinstance(after, (int, float)):
            table.add_row(key, f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}")
    console.print(table)
    if info.task == "instance":
        console.print("AP here scores the detections at or above 0.5 (those SAM redraws), so it is below plain "
                      "`seglab evaluate`'s mask_AP, which scores every detection.", highlight=False)
    console.print(f"{report.get('refined', 0)} region(s) redrawn, {report.get('kept', 0)} kept as the model drew "
                  "them (SAM's mask did not overlap enough).", highlight=False)
    if json_out is not None:
        from seglab.inference.evaluation import jsonable

        atomic_write_text(json_out, json.dumps(jsonable(report), indent=2) + "\n")
        console.print(f"before/after metrics written to {json_out}")
