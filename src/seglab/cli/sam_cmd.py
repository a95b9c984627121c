"""`seglab annotate` and `seglab sam prompt|auto|types`: Segment Anything from the command line.

Each command checks that the extra is installed (else: how to install it, exit 2), loads SAM from the local
``--sam-checkpoint`` and calls one function of :mod:`seglab.sam`. ``--refine sam`` of ``seglab predict`` is in
``predict_cmd.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from seglab.cli.app import app, console

sam_app = typer.Typer(help="Segment Anything: prompted and automatic masks (extra: pip install 'seglab\\[sam]').",
                      no_args_is_help=True)
app.add_typer(sam_app, name="sam")

_IMAGES = typer.Argument(..., help="Image files, folders or glob patterns.")
_CKPT = typer.Option(..., "--sam-checkpoint", help="SAM weight file you downloaded (seglab never downloads); "
                     "`seglab sam types` lists the file of each type.")
_TYPE = typer.Option("vit_b", "--sam-model", help="SAM model type of the file: vit_b | vit_l | vit_h.")
_DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N")
_CLASSIFY = typer.Option(None, "--classify", help="Automatic masks: a seglab run (or checkpoint) whose model names "
                         "each mask; masks it calls background or does not detect are dropped. Default: 'object'.")
# Automatic-mask options: None keeps upstream's default (shown in the help).
_AUTO = {
    "points_per_side": typer.Option(None, "--points-per-side", help="Grid points per side (default 32)."),
    "points_per_batch": typer.Option(None, "--points-per-batch", help="Points decoded at once (default 64)."),
    "pred_iou_thresh": typer.Option(None, "--pred-iou-thresh", help="Keep masks whose predicted IoU is above "
                                    "this (default 0.88)."),
    "stability_score_thresh": typer.Option(None, "--stability-score-thresh", help="Keep masks at least this "
                                           "stable (default 0.95)."),
    "box_nms_thresh": typer.Option(None, "--box-nms-thresh", help="Box IoU above which duplicates are dropped "
                                   "(default 0.7)."),
    "crop_n_layers": typer.Option(None, "--crop-n-layers", help="Also run on crops: 1 = 2x2 crops, ... (default 0)."),
    "min_area": typer.Option(None, "--min-area", help="Drop masks (automatic) or leave regions (from a semantic "
                             "run) smaller than this many pixels (defaults 0 and 16)."),
}


def _sam(checkpoint: Path, model_type: str, device: str) -> Any:
    """The extra's presence first (the install hint), then the model from the local file."""
    from seglab.distributed import resolve_device
    from seglab.sam import load_sam, require_segment_anything

    require_segment_anything()
    return load_sam(checkpoint, model_type, device=resolve_device(device))


def _auto_options(**given: Any) -> Any:
    from seglab.sam import AutoMaskOptions

    return AutoMaskOptions(**{k: v for k, v in given.items() if v is not None})


def _model_source(run: Path | None, score_threshold: float, min_area: int | None, device: str) -> Any:
    """A :class:`~seglab.sam.ModelSource` on a seglab run (None without one)."""
    if run is None:
        return None
    from seglab.checkpoint import load_checkpoint
    from seglab.distributed import resolve_device
    from seglab.sam import ModelSource

    model, info = load_checkpoint(run, device=resolve_device(device))
    return ModelSource(model, info, score_threshold=score_threshold, min_area=16 if min_area is None else min_area)


def _which_source(prompts: Path | None, from_run: Path | None, auto: bool, classify: Path | None,
                  auto_options: dict[str, Any], score_threshold: float | None = None) -> float:
    """Refuse sources and options that do not go together; the detection threshold to use (default 0.5)."""
    from seglab.errors import ConfigError

    if score_threshold is not None and from_run is None and classify is None:
        raise ConfigError("--score-threshold filters the detections of --from-run or --classify RUN; drop it.")
    if (prompts is not None) + (from_run is not None) + auto != 1:
        raise ConfigError("annotate: give exactly one source of objects: --prompts FILE (boxes / points), "
                          "--from-run RUN (a trained seglab model's detections or regions) or --auto.")
    if classify is not None and not auto:
        raise ConfigError("--classify names the masks of --auto; with --from-run the run gives the classes.")
    given = [k for k, v in auto_options.items() if v is not None and not (k == "min_area" and from_run)]
    if given and not auto:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise ConfigError(f"{flags}: automatic-mask options apply to --auto only.")
    return 0.5 if score_threshold is None else score_threshold


@app.command()
def annotate(
    images: list[str] = _IMAGES,
    out: Path = typer.Option(..., "--out", help="New dataset folder (must not exist, or be empty)."),
    sam_checkpoint: Path = _CKPT, sam_model: str = _TYPE,
    prompts: Path | None = typer.Option(None, "--prompts", "--boxes", help="CSV or JSON file of boxes / points "
                                        "(docs/sam.md: image,class,object,x1,y1,x2,y2,x,y,label)."),
    from_run: Path | None = typer.Option(None, "--from-run", help="A trained seglab run: its detections (instance) "
                                         "or class regions (semantic) become SAM box prompts."),
    auto: bool = typer.Option(False, "--auto", help="SAM's automatic masks (class 'object', or --classify)."),
    classify: Path | None = _CLASSIFY,
    layout: str = typer.Option("instance", "--layout", help="instance (masks/ + JSON) | semantic (labels/)."),
    split: str = typer.Option("train", "--split", help="Split the images go to."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of the images put in val instead "
                                       "(seglab train needs a val split: at least one image when there are two or "
                                       "more; 0 = none)."),
    score_threshold: float | None = typer.Option(None, "--score-threshold", help="--from-run / --classify with an "
                                                 "instance model: detections kept (default 0.5)."),
    review: bool = typer.Option(True, "--review/--no-review", help="Write review/<split>/<stem>.png pictures."),
    device: str = _DEVICE, **auto_options: Any,
) -> None:
    """Bootstrap a dataset: SAM draws the boundaries, prompts or a seglab model give the objects and classes."""
    from seglab.cli.progress import progress_bar
    from seglab.sam import AutoSource, PromptSource
    from seglab.sam import annotate as run_annotate
    from seglab.sam.prompts import match_images, read_prompts

    score_threshold = _which_source(prompts, from_run, auto, classify, auto_options, score_threshold)
    sam = _sam(sam_checkpoint, sam_model, device)
    if prompts is not None:
        from seglab.sam.annotate import plan_inputs

        objects = match_images(read_prompts(prompts), plan_inputs(images, out), str(prompts))
        source: Any = PromptSource(objects, str(prompts))
    elif from_run is not None:
        source = _model_source(from_run, score_threshold, auto_options.get("min_area"), device)
    else:
        classifier = _model_source(classify, score_threshold, None, device)
        source = AutoSource(sam, _auto_options(**auto_options), classifier)
    about = {"sam_checkpoint": str(sam_checkpoint), "sam_model": sam_model}
    with progress_bar("annotate") as callback:
        result = run_annotate(images, out, sam, source, split=split, val_fraction=val_fraction, layout=layout,
                              review=review, about=about, callback=callback)
    _report_annotate(result)


def _report_annotate(result: Any) -> None:
    splits = ", ".join(f"{s}: {n} image(s), {result.objects.get(s, 0)} object(s)" for s, n in result.images.items())
    classes = ", ".join(f"{name} {n}" for name, n in result.per_class.items())
    out = escape(str(result.out))
    console.print(f"wrote {out} ({result.layout} layout; {splits}); objects per class: {classes or 'none'}"
                  f"{f'; {result.empty} image(s) without objects' if result.empty else ''}", highlight=False)
    check = f"seglab data check {out}" + (" --task instance" if result.layout == "instance" else "")
    console.print(f"next: look at {out}/review/, then `{check}` and `seglab train --data {out}`", highlight=False)


def _auto_signature(fn: Any) -> Any:
    """Give ``fn`` (``**auto_options``) the automatic-mask flags as keyword parameters typer can see."""
    import inspect

    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt,
                                 annotation=float | None if "thresh" in name else int | None)
               for name, opt in _AUTO.items()]
    fn.__signature__ = sig.replace(parameters=params)
    return fn


_auto_signature(annotate)


@sam_app.command("prompt")
def prompt(
    images: list[str] = _IMAGES,
    prompts: Path = typer.Option(..., "--prompts", "--boxes", help="CSV or JSON file of boxes / points."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    sam_checkpoint: Path = _CKPT, sam_model: str = _TYPE,
    save: str = typer.Option("instances,review,coco", "--save", help="Any of instances (<stem>.png + .json), "
                             "label (<stem>_label.png), review (<stem>_review.png), coco (coco.json)."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Replace what an earlier run wrote to --out."),
    device: str = _DEVICE,
) -> None:
    """Masks for the boxes and points of a prompt file (one image embedding per image, many prompts)."""
    from seglab.cli.progress import progress_bar
    from seglab.sam import predict_prompts

    sam = _sam(sam_checkpoint, sam_model, device)
    with progress_bar("sam prompt") as callback:
        result = predict_prompts(sam, images, prompts, out, save=save, exist_ok=exist_ok, callback=callback)
    console.print(f"{result.objects} mask(s) on {result.images} image(s) written to {escape(str(out))} "
                  f"({result.embeddings} image embedding(s))", highlight=False)


@sam_app.command("auto")
def auto_masks(
    images: list[str] = _IMAGES,
    out: Path = typer.Option(..., "--out", help="Output folder."),
    sam_checkpoint: Path = _CKPT, sam_model: str = _TYPE, classify: Path | None = _CLASSIFY,
    score_threshold: float = typer.Option(0.5, "--score-threshold", help="--classify with an instance model: "
                                          "detections kept."),
    save: str = typer.Option("instances,review,coco", "--save", help="Any of instances, label, review, coco."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Replace what an earlier run wrote to --out."),
    device: str = _DEVICE, **auto_options: Any,
) -> None:
    """Every object SAM finds (grid of point prompts, quality and stability filters, NMS, optional crops)."""
    from seglab.cli.progress import progress_bar
    from seglab.sam import predict_auto

    sam = _sam(sam_checkpoint, sam_model, device)
    classifier = _model_source(classify, score_threshold, None, device)
    with progress_bar("sam auto") as callback:
        result = predict_auto(sam, images, out, options=_auto_options(**auto_options), classifier=classifier,
                              save=save, exist_ok=exist_ok, callback=callback)
    console.print(f"{result.objects} mask(s) on {result.images} image(s) written to {escape(str(out))}",
                  highlight=False)


_auto_signature(auto_masks)


@sam_app.command("types")
def types() -> None:
    """The SAM model types, the file each reads and its size (download them by hand; seglab never does)."""
    from seglab.sam import SAM_TYPES

    for kind in SAM_TYPES.values():
        console.print(f"{kind.name}: {kind.file} ({kind.size}); encoder {kind.depth} blocks of width {kind.width}",
                      highlight=False)
