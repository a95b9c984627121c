"""What ``seglab export`` adds to the metadata so the file alone can predict (``seglab.runtime``, no torch).

Beside :func:`seglab.export.api.checkpoint_metadata` (classes, mean/std, channels, ignore index) a bundle
carries the task, the model's stride (the graph pads to it inside), the 256-colour palette the index PNGs
are written with, the tiling defaults of ``seglab predict`` and the run's ``data.resize`` (long side in
pixels the model saw in training, or ``null``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from seglab.checkpoint import CheckpointInfo

# How the runtime applies `seglab.resize`; written into the file so another runtime can repeat it.
RESIZE_NOTE = ("with seglab.resize = L: normalize, scale the image (bilinear, antialiased) so its long side is L "
               "pixels (each side round-half-up of side * L / long side), predict, scale the log-probabilities back "
               "to the image's size (bilinear, align_corners=False), then argmax")


def bundle_metadata(model: nn.Module, info: CheckpointInfo) -> dict[str, Any]:
    """The keys the runtime reads beyond ``checkpoint_metadata``: task, stride, palette, tiling, resize."""
    from seglab.inference.tiling import TileOptions
    from seglab.inference.writers import class_palette
    from seglab.tasks import task_kind
    from seglab.viz import default_palette

    tiles = TileOptions()
    resize = getattr(info, "resize", None)  # the run's data.resize, read and checked by checkpoint.py
    return {
        "seglab.task": info.task,
        "seglab.stride": int(getattr(model, "stride", 1) or 1),
        "seglab.palette256": class_palette(info).tolist(),
        # tta: the plan's advice the run recorded (data.tta), which `seglab predict RUN` applies unless --tta says
        "seglab.tiling": {"tile": tiles.tile, "overlap": tiles.overlap, "blend": tiles.blend,
                          "tta": ((info.config or {}).get("data") or {}).get("tta") or None},
        "seglab.resize": int(resize) if isinstance(resize, int) and resize > 0 else None,
        "seglab.resize_rule": RESIZE_NOTE,
        # instance-id PNGs are painted with this palette (seglab.inference.writers.InstanceWriter)
        **({"seglab.id_palette256": default_palette(256, ignore_index=None).tolist()}
           if task_kind(info.task).detector else {}),
    }
