"""``seglab sam prompt`` / ``seglab sam auto``: SAM's masks of images written in seglab's formats.

Per image, in ``out`` (``save`` picks, comma-separated):

- ``instances``: ``<stem>.png`` instance ids (0 = none) + ``<stem>.json`` (category ids, classes, scores);
- ``label``: ``<stem>_label.png`` class indices (0 = background, class i = category i);
- ``review``: ``<stem>_review.png`` the image with its masks;
- ``coco``: one ``coco.json`` for all images (COCO instances, compressed RLE, with SAM's scores).

Outputs of an earlier run are replaced only with ``exist_ok``; inputs are never replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from seglab.errors import ConfigError, OutputError
from seglab.sam.auto import AutoMaskOptions
from seglab.sam.formats import CocoDocument, save_review, write_instances, write_label_map
from seglab.sam.session import SamSession
from seglab.sam.sources import AutoSource, ModelSource, PromptSource, Source

SAVE_FORMATS = ("instances", "label", "review", "coco")
Progress = Callable[[int, int], None]


@dataclass
class SamPredictResult:
    """What was written: images, objects (visible once overlaps are painted), every file."""

    out: Path
    images: int
    objects: int
    files: list[Path]
    embeddings: int = 0


def parse_save(save: str) -> tuple[str, ...]:
    """``"instances,coco"`` -> ``("instances", "coco")``; an unknown name is a ConfigError listing the valid ones."""
    names = tuple(dict.fromkeys(s.strip() for s in save.split(",") if s.strip()))
    bad = [n for n in names if n not in SAVE_FORMATS]
    if bad or not names:
        raise ConfigError(f"--save {save!r}: use one or several of {', '.join(SAVE_FORMATS)} (comma-separated).")
    return names


def planned_files(out: Path, images: Sequence[Path], save: tuple[str, ...]) -> list[Path]:
    """Every file a run writes, in order."""
    files: list[Path] = []
    for p in images:
        files += [out / f"{p.stem}.png", out / f"{p.stem}.json"] * ("instances" in save)
        files += [out / f"{p.stem}_label.png"] * ("label" in save) + [out / f"{p.stem}_review.png"] * ("review" in save)
    return files + [out / "coco.json"] * ("coco" in save)


def predict_prompts(sam: nn.Module | SamSession, inputs: Sequence[str | Path], prompts: str | Path,
                    out: str | Path, *, save: str = "instances,review,coco", classes: list[str] | None = None,
                    exist_ok: bool = False, callback: Progress | None = None) -> SamPredictResult:
    """SAM's mask for each object of a prompt file (:mod:`seglab.sam.prompts`) on ``inputs``.

    ``classes`` fixes the category order (default: the file's class names, sorted).
    """
    from seglab.sam.annotate import plan_inputs
    from seglab.sam.prompts import match_images, read_prompts

    images = plan_inputs(inputs, Path(out))
    source = PromptSource(match_images(read_prompts(prompts), images, str(prompts)), str(prompts), classes)
    return _run(sam, images, source, Path(out), parse_save(save), exist_ok, callback)


def predict_auto(sam: nn.Module, inputs: Sequence[str | Path], out: str | Path, *,
                 options: AutoMaskOptions | None = None, classifier: ModelSource | None = None,
                 save: str = "instances,review,coco", exist_ok: bool = False,
                 callback: Progress | None = None) -> SamPredictResult:
    """SAM's automatic masks of ``inputs`` (class ``object``, or from ``classifier``'s model)."""
    from seglab.sam.annotate import plan_inputs

    images = plan_inputs(inputs, Path(out))
    return _run(sam, images, AutoSource(sam, options, classifier), Path(out), parse_save(save), exist_ok, callback)


def _run(sam: nn.Module | SamSession, images: list[Path], source: Source, out: Path, save: tuple[str, ...],
         exist_ok: bool, callback: Progress | None) -> SamPredictResult:
    from seglab.data.io import read_image
    from seglab.fileio import check_output_path, refuse_overwrite

    check_output_path(out, directory=True)
    files = planned_files(out, images, save)
    refuse_overwrite(files, images)
    old = [f for f in files if f.exists()]
    if old and not exist_ok:
        raise OutputError(f"--out {out}: holds {len(old)} output(s) of an earlier run (e.g. {old[0].name}). Pass "
                          "--exist-ok to replace them, or another --out.")
    session = sam if isinstance(sam, SamSession) else SamSession(sam)
    coco, objects = CocoDocument(source.names), 0
    for done, path in enumerate(images, 1):
        image = read_image(path, channels=3)
        found = source.find(session, path, image)
        objects += len(found.painted()[1])
        if "instances" in save:
            write_instances(out / f"{path.stem}.png", found, source.names)
        if "label" in save:
            write_label_map(out / f"{path.stem}_label.png", found)
        if "review" in save:
            save_review(out / f"{path.stem}_review.png", image, found, source.names)
        coco.add(path.name, found)
        if callback is not None:
            callback(done, len(images))
    if "coco" in save:
        coco.write(out / "coco.json")
    return SamPredictResult(out, len(images), objects, files, session.embeddings)
