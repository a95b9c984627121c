"""Instance segmentation data: COCO JSON, instance-mask folders, their doctor and converters.

Two layouts carry the same information (DESIGN.md):

- COCO: ``annotations/instances_<split>.json`` + ``images/<split>/<file_name>``; segmentations as polygons,
  uncompressed or compressed RLE.
- Mask folder: ``masks/<split>/<stem>.png`` (0 = background, k = instance k) + ``masks/<split>/<stem>.json``
  = ``{"labels": [c_1, ..., c_n]}`` (category id of each instance); names from ``classes.txt``.

Both datasets return torchvision detection targets so the v2 joint transforms move image, boxes and masks
together. RLE encoding, decoding and polygon rasterisation go through faster-coco-eval's mask API, the same
code that scores the predictions, so a mask means the same pixels everywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import faster_coco_eval.core.mask as mask_utils
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from seglab.data.checks import Problem
from seglab.data.io import DEFAULT_MAX_PIXELS, IMAGE_EXTS, list_files, read_image, read_label, write_label
from seglab.errors import DataError
from seglab.fileio import atomic_write_text

BACKGROUND_NAMES = ("background", "_background_", "__background__", "bg")
Track = Callable[[Sequence[Any]], Iterable[Any]]


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a syntax error names the line and column so the user can find it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found. Check the dataset root and split name.") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}. "
                        "Fix the file (a JSON linter shows the spot) or re-export it.") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read JSON ({e}). Re-export the file.") from e


def read_classes(root: str | os.PathLike) -> dict[int, str]:
    """Category id -> name from ``classes.txt``.

    A first line naming the background (e.g. ``background``) means line i names category id i (the
    semantic convention); otherwise line i names category id i + 1 (COCO ids start at 1), as in
    ``pennfudan/classes.txt`` = ``pedestrian``. Missing file: empty dict.
    """
    path = Path(root) / "classes.txt"
    if not path.is_file():
        return {}
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    offset = 0 if names and names[0].lower() in BACKGROUND_NAMES else 1
    return {i + offset: n for i, n in enumerate(names) if i + offset > 0}


def segmentation_to_rle(segm: Any, height: int, width: int) -> dict:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) -> compressed RLE."""
    try:
        return mask_utils.segmToRle(segm, width, height)
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"segmentation does not decode at {width}x{height}: {e}. Run "
                        "`seglab data check --task instance` on the dataset.") from e


def encode_mask(mask: np.ndarray) -> dict:
    """Binary HxW mask -> JSON-ready compressed RLE ``{"size": [h, w], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(s) for s in rle["size"]], "counts": counts.decode() if isinstance(counts, bytes)
            else counts}


def tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) masks -> (N, 4) float XYXY boxes on pixel edges (x2 = last column + 1), as COCO's bbox."""
    if masks.numel() == 0:
        return torch.zeros((masks.shape[0], 4), dtype=torch.float32)
    m = masks.bool()
    cols, rows = m.any(1), m.any(2)
    ar_w = torch.arange(m.shape[2], device=m.device)
    ar_h = torch.arange(m.shape[1], device=m.device)
    x1 = torch.where(cols, ar_w, m.shape[2]).amin(1)
    x2 = torch.where(cols, ar_w, -1).amax(1) + 1
    y1 = torch.where(rows, ar_h, m.shape[1]).amin(1)
    y2 = torch.where(rows, ar_h, -1).amax(1) + 1
    return torch.stack([x1, y1, x2, y2], 1).float()


class _InstanceDataset(Dataset):
    """Shared tail of both layouts: build tv_tensors, transform, re-derive boxes from masks, drop empties."""

    classes: list[str]
    cat_ids: list[int]
    transforms: Callable | None

    def _set_categories(self, names: dict[int, str]) -> None:
        self.cat_ids = [0, *sorted(names)]  # index = contiguous training label; 0 = background
        self.classes = ["background", *(names[c] for c in self.cat_ids[1:])]
        self._label_of = {c: i for i, c in enumerate(self.cat_ids) if i > 0}

    @property
    def num_classes(self) -> int:
        """Number of model outputs, background included (what Mask R-CNN builders take)."""
        return len(self.classes)

    def _sample(self, image: np.ndarray, masks: np.ndarray, cat_ids: Sequence[int],
                image_id: int) -> tuple[torch.Tensor, dict[str, Any]]:
        h, w = image.shape[:2]
        img = tv_tensors.Image(torch.tensor(image).permute(2, 0, 1).float().div_(255.0))
        m = torch.from_numpy(masks.reshape(-1, h, w).astype(np.uint8))
        target = {
            "boxes": tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([self._label_of[c] for c in cat_ids], dtype=torch.int64),
            "masks": tv_tensors.Mask(m),
            "image_id": int(image_id),
        }
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        # Boxes are re-derived from the (transformed) masks: a rotated or cropped box is looser than the
        # object, and an instance cropped away entirely must not reach the loss as an empty target.
        m = target["masks"]
        keep = m.flatten(1).bool().any(1) if m.shape[0] else torch.zeros(0, dtype=torch.bool)
        m = tv_tensors.wrap(m[keep], like=m) if isinstance(m, tv_tensors.Mask) else tv_tensors.Mask(m[keep])
        canvas = tuple(m.shape[-2:])
        target["masks"] = m
        target["labels"] = target["labels"][keep]
        target["boxes"] = tv_tensors.BoundingBoxes(tight_boxes(m), format="XYXY", canvas_size=canvas)
        target["area"] = m.flatten(1).sum(1).float()
        target["iscrowd"] = torch.zeros(int(keep.sum()), dtype=torch.int64)
        return torch.as_tensor(img).float(), target


class CocoInstances(_InstanceDataset):
    """COCO instances (``annotations/instances_<split>.json`` + ``images/<split>/``) as detection targets.

    Item: ``(image, target)``; image (3, H, W) float32 in [0, 1]; target ``boxes`` (N, 4) XYXY
    ``BoundingBoxes`` (tight box of each mask), ``labels`` (N,) int64 contiguous 1..K (``cat_ids[label]`` is
    the COCO category id, ``classes[label]`` its name; 0 = background), ``masks`` (N, H, W) uint8 ``Mask``,
    ``image_id`` int, ``iscrowd`` (N,) int64 zeros, ``area`` (N,) float32 mask pixel counts.

    Crowd annotations (``iscrowd=1``) are kept out of the targets: they mark regions of many objects that
    should neither be learnt as one instance nor punished as background; evaluation against the original
    JSON still honours them. ``check=True`` runs the instance doctor on the split first.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transforms: Callable | None = None,
                 check: bool = True) -> None:
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.ann_file = self.root / "annotations" / f"instances_{split}.json"
        if check:
            _raise_problems(_check_coco(self.root, split, DEFAULT_MAX_PIXELS), self.root)
        data = read_json(self.ann_file)
        self.images = sorted(data["images"], key=lambda im: im["id"])
        self._set_categories({c["id"]: c.get("name", f"class_{c['id']}") for c in data["categories"]})
        self._anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for a in sorted(data["annotations"], key=lambda a: a.get("id", 0)):
            if not a.get("iscrowd", 0) and a["image_id"] in self._anns:
                self._anns[a["image_id"]].append(a)

    def __len__(self) -> int:
        return len(self.images)

    def image_categories(self) -> list[set[int]]:
        """Category ids present in each image (non-crowd), without decoding anything (repeat-factor sampling)."""
        return [{a["category_id"] for a in self._anns[im["id"]]} for im in self.images]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        info = self.images[i]
        image = read_image(self.root / "images" / self.split / info["file_name"])
        h, w = image.shape[:2]
        anns = self._anns[info["id"]]
        rles = [segmentation_to_rle(a["segmentation"], h, w) for a in anns]
        masks = mask_utils.decode(rles).transpose(2, 0, 1) if rles else np.zeros((0, h, w), np.uint8)
        return self._sample(image, masks, [a["category_id"] for a in anns], info["id"])


class InstanceMaskFolder(_InstanceDataset):
    """Instance-mask folder (``masks/<split>/<stem>.png`` + ``<stem>.json``) with CocoInstances' output.

    Image ids are 1-based positions in the sorted image list, the ids :func:`masks_to_coco` writes. A PNG
    without its JSON is accepted only when ``classes.txt`` names a single category (all instances get it).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 transforms: Callable | None = None) -> None:
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.image_paths = list_files(self.root / "images" / split, IMAGE_EXTS)
        if not self.image_paths:
            raise DataError(f"{self.root / 'images' / split}: no images. Expected images/{split}/<stem>.png "
                            f"with masks/{split}/<stem>.png beside it.")
        names = read_classes(self.root)
        if not names:  # no classes.txt: categories are whatever the JSON files use
            used = {c for p in self.image_paths for c in self._labels(p, None) or []}
            names = {c: f"class_{c}" for c in sorted(used)}
        self._set_categories(names)

    def _labels(self, image_path: Path, n: int | None) -> list[int] | None:
        js = self.root / "masks" / self.split / f"{image_path.stem}.json"
        if js.is_file():
            return [int(c) for c in read_json(js)["labels"]]
        if n is not None and len(self.cat_ids) == 2:
            return [self.cat_ids[1]] * n
        if n is None:
            return None
        raise DataError(f"{js}: missing; it lists the category of each instance ({{\"labels\": [...]}}). "
                        "Write it, or keep a single category in classes.txt.")

    def __len__(self) -> int:
        return len(self.image_paths)

    def image_categories(self) -> list[set[int]]:
        """Category ids listed for each image (from its JSON; the single category when there is none)."""
        out = []
        for path in self.image_paths:
            labels = self._labels(path, None)
            out.append(set(labels) if labels is not None else {self.cat_ids[1]})
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        path = self.image_paths[i]
        image = read_image(path)
        ids = read_label(self.root / "masks" / self.split / f"{path.stem}.png")
        if ids.shape != image.shape[:2]:
            raise DataError(f"{path.stem}: mask is {ids.shape[1]}x{ids.shape[0]}, image "
                            f"{image.shape[1]}x{image.shape[0]}. Run `seglab data check --task instance`.")
        n = int(ids.max(initial=0))
        labels = self._labels(path, n)
        if len(labels) != n:
            raise DataError(f"{path.stem}.json: {len(labels)} labels for {n} instances in the PNG. "
                            "Give one category id per instance id 1..n.")
        masks = ids[None] == np.arange(1, n + 1)[:, None, None]
        return self._sample(image, masks, labels, i + 1)


def collate_instances(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Keep images and targets as lists: detection models take images of different sizes."""
    return [b[0] for b in batch], [b[1] for b in batch]



# ----------------------------------------------------------------------------------------- the doctor


def check_instance_dataset(root: str | os.PathLike, splits: list[str] | None = None,
                           max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Problem]:
    """Scan an instance dataset (COCO JSON and/or mask folders) and return every problem found.

    ``splits=None`` checks every split that has ``annotations/instances_<split>.json`` or ``masks/<split>/``.
    An empty list means the dataset loads cleanly.
    """
    root = Path(root)
    if splits is None:
        found = {p.stem[len("instances_"):] for p in (root / "annotations").glob("instances_*.json")}
        if (root / "masks").is_dir():
            found |= {d.name for d in (root / "masks").iterdir() if d.is_dir()}
        splits = sorted(found)
        if not splits:
            return [Problem(root, "no instance annotations found", "add annotations/instances_<split>.json "
                            "(COCO) or masks/<split>/<stem>.png + .json")]
    problems: list[Problem] = []
    for split in splits:
        coco = (root / "annotations" / f"instances_{split}.json").is_file()
        masks = (root / "masks" / split).is_dir()
        if not coco and not masks:
            problems.append(Problem(root, f"split {split!r} has neither annotations/instances_{split}.json "
                                    f"nor masks/{split}/", "add one of them or drop the split"))
        if coco:
            problems += _check_coco(root, split, max_pixels)
        if masks:
            problems += _check_mask_folder(root, split, max_pixels)
    return problems


def _raise_problems(problems: list[Problem], root: Path) -> None:
    if problems:
        p = problems[0]
        raise DataError(f"{root}: {len(problems)} problem(s) in the instance dataset; first: {p.path}: "
                        f"{p.problem} (fix: {p.fix}). `seglab data check --task instance {root}` lists all.")


def _json_or_problem(path: Path) -> tuple[Any, Problem | None]:
    try:
        return json.loads(path.read_text()), None
    except json.JSONDecodeError as e:
        return None, Problem(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                             "fix the syntax at that spot or re-export the file")
    except (OSError, UnicodeDecodeError) as e:
        return None, Problem(path, f"cannot read file ({e})", "re-export the file")


def _image_size(path: Path, max_pixels: int) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) after EXIF rotation (as read_image sees it), or a reason it cannot be used."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # orientations that swap width and height
                w, h = h, w
    except Exception as e:  # Pillow raises many types for broken files and decompression bombs
        return None, f"cannot read image ({type(e).__name__}: {e})"
    if w * h > max_pixels:
        return None, f"image has {w * h} pixels, over the limit of {max_pixels}"
    return (w, h), None


def _check_coco(root: Path, split: str, max_pixels: int) -> list[Problem]:
    path = root / "annotations" / f"instances_{split}.json"
    data, bad = _json_or_problem(path)
    if bad:
        return [bad]
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        return [Problem(path, "not a COCO instances file (needs lists 'images', 'annotations', 'categories')",
                        "export the annotations in COCO instances format")]
    out: list[Problem] = []
    cats = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    sizes: dict[Any, tuple[int, int]] = {}
    for im in data["images"]:
        iid, name = im.get("id"), im.get("file_name", "")
        if iid in sizes:
            out.append(Problem(path, f"duplicate image id {iid} ({name})", "give every image a unique id"))
            continue
        sizes[iid] = (im.get("width", 0), im.get("height", 0))
        file = root / "images" / split / name
        if not file.is_file():
            out.append(Problem(file, f"image listed in {path.name} (id {iid}) is missing on disk",
                               f"add the file under images/{split}/ or remove its entry"))
            continue
        wh, why = _image_size(file, max_pixels)
        if why:
            out.append(Problem(file, why, "re-export the image or remove it"))
        elif wh != sizes[iid]:
            out.append(Problem(file, f"JSON says {sizes[iid][0]}x{sizes[iid][1]}, file is {wh[0]}x{wh[1]}",
                               "fix width/height in the JSON (or the image)"))
    for a in data["annotations"]:
        out += _check_annotation(path, a, sizes, cats)
    return out


def _check_annotation(path: Path, a: dict, sizes: dict, cats: set) -> list[Problem]:
    where = f"{path} (annotation id {a.get('id')}, image id {a.get('image_id')})"
    if a.get("image_id") not in sizes:
        return [Problem(where, "annotation refers to an image id not in 'images'",
                        "fix image_id or remove the annotation")]
    w, h = sizes[a["image_id"]]
    out = []
    if a.get("category_id") not in cats:
        out.append(Problem(where, f"category id {a.get('category_id')} is not in 'categories' "
                           f"({sorted(cats)})", "fix category_id or add the category"))
    box = a.get("bbox")
    if box is not None and (len(box) != 4 or box[2] <= 0 or box[3] <= 0):
        out.append(Problem(where, f"zero-area or malformed bbox {box}", "use [x, y, width, height] > 0"))
    elif box is not None and (box[0] < -1e-3 or box[1] < -1e-3 or box[0] + box[2] > w + 1e-3
                              or box[1] + box[3] > h + 1e-3):
        out.append(Problem(where, f"bbox {box} lies outside the {w}x{h} image", "clip the box to the image"))
    segm = a.get("segmentation")
    if isinstance(segm, list):
        short = [len(p) // 2 for p in segm if not isinstance(p, list) or len(p) < 6 or len(p) % 2]
        if short or not segm:
            out.append(Problem(where, f"polygon(s) with fewer than 3 points ({short or 'none given'})",
                               "give each polygon >= 3 (x, y) points or drop it"))
            return out
    elif isinstance(segm, dict):
        if list(segm.get("size", [])) != [h, w]:
            out.append(Problem(where, f"mask size {segm.get('size')} (h, w) but the image is {h}x{w} (h x w)",
                               "re-encode the mask at the image size"))
            return out
    else:
        return [*out, Problem(where, "missing or unknown segmentation", "give polygons or an RLE mask")]
    try:
        if mask_utils.area(mask_utils.segmToRle(segm, w, h)) == 0:
            out.append(Problem(where, "segmentation covers no pixels", "fix or remove the annotation"))
    except (ValueError, TypeError, KeyError) as e:
        out.append(Problem(where, f"segmentation does not decode ({e})", "re-encode the mask"))
    return out


def _check_mask_folder(root: Path, split: str, max_pixels: int) -> list[Problem]:
    images = list_files(root / "images" / split, IMAGE_EXTS)
    masks = list_files(root / "masks" / split, (".png",))
    by_stem = {p.stem: p for p in images}
    out = [Problem(p, "two images share this stem", "keep one file per stem") for p in images
           if by_stem[p.stem] != p]
    names = read_classes(root)
    mask_stems = {p.stem for p in masks}
    out += [Problem(p, "image has no instance mask", f"add masks/{split}/{p.stem}.png or remove the image")
            for p in by_stem.values() if p.stem not in mask_stems]
    for m in masks:
        if m.stem not in by_stem:
            out.append(Problem(m, "mask has no image",
                               f"add images/{split}/{m.stem}.<ext> or remove the mask"))
            continue
        wh, why = _image_size(by_stem[m.stem], max_pixels)
        try:
            ids = read_label(m)
        except DataError as e:
            out.append(Problem(m, str(e), "re-export the mask as a single-channel PNG of instance ids"))
            continue
        if why:
            out.append(Problem(by_stem[m.stem], why, "re-export the image or remove it"))
        elif (ids.shape[1], ids.shape[0]) != wh:
            out.append(Problem(m, f"mask is {ids.shape[1]}x{ids.shape[0]}, image is {wh[0]}x{wh[1]}",
                               "re-export the mask at the image size"))
        out += _check_mask_labels(m, int(ids.max(initial=0)), names)
    return out


def _check_mask_labels(mask: Path, n: int, names: dict[int, str]) -> list[Problem]:
    js = mask.with_suffix(".json")
    if not js.is_file():
        return [] if len(names) == 1 else [Problem(mask, f"no {js.name} with the category of each instance",
                                                   f'write {js.name} = {{"labels": [...]}} ({n} ids)')]
    data, bad = _json_or_problem(js)
    if bad:
        return [bad]
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not all(isinstance(c, int) for c in labels):
        return [Problem(js, 'needs {"labels": [category ids]}',
                        "list one integer category id per instance")]
    out = []
    if len(labels) != n:
        out.append(Problem(js, f"{len(labels)} labels but the PNG has instance ids up to {n}",
                           "give exactly one category id per instance id 1..n"))
    unknown = sorted({c for c in labels if c <= 0 or (names and c not in names)})
    if unknown:
        out.append(Problem(js, f"category ids {unknown} are not in classes.txt ({sorted(names)})",
                           "fix the ids or add the category names to classes.txt"))
    return out


# ----------------------------------------------------------------------------------------- converters


def _identity(items: Sequence[Any]) -> Iterable[Any]:
    return items


def masks_to_coco(root: str | os.PathLike, split: str, out_json: str | os.PathLike, overwrite: bool = False,
                  track: Track = _identity) -> dict[str, int]:
    """Write the mask folder ``masks/<split>/`` of ``root`` as a COCO instances JSON (compressed RLE).

    Image ids are 1-based positions in the sorted image list (as :class:`InstanceMaskFolder`); instance k of
    an image becomes its k-th annotation. ``track`` wraps the image loop (a progress bar in the CLI).

    Returns:
        ``{"images": ..., "instances": ...}`` counts written.
    """
    out_json = Path(out_json)
    if out_json.exists() and not overwrite:
        raise DataError(f"{out_json}: already exists. Choose another output path or pass overwrite=True "
                        "(--force) to replace it.")
    ds = InstanceMaskFolder(root, split)
    if out_json.resolve().parent == (ds.root / "masks" / split).resolve():
        raise DataError(f"{out_json}: inside the input folder masks/{split}/; write the JSON elsewhere "
                        f"(default annotations/instances_{split}.json).")
    images, anns = [], []
    for i, path in enumerate(track(ds.image_paths)):
        ids = read_label(ds.root / "masks" / split / f"{path.stem}.png")
        wh, why = _image_size(path, DEFAULT_MAX_PIXELS)
        if why or wh != (ids.shape[1], ids.shape[0]):
            raise DataError(f"{path}: {why or 'image and mask sizes differ'}. Run "
                            f"`seglab data check --task instance {ds.root}` first.")
        n = int(ids.max(initial=0))
        labels = ds._labels(path, n)
        if len(labels) != n:
            raise DataError(f"{path.stem}.json: {len(labels)} labels for {n} instances. One id per instance.")
        images.append({"id": i + 1, "file_name": path.name, "width": wh[0], "height": wh[1]})
        for k in range(1, n + 1):
            m = ids == k
            if m.any():
                rle = encode_mask(m)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": labels[k - 1],
                             "segmentation": rle, "area": float(m.sum()), "iscrowd": 0,
                             "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
    cats = [{"id": c, "name": ds.classes[j]} for j, c in enumerate(ds.cat_ids) if j > 0]
    atomic_write_text(out_json, json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return {"images": len(images), "instances": len(anns)}


def coco_to_masks(root: str | os.PathLike, split: str, out_dir: str | os.PathLike, overwrite: bool = False,
                  track: Track = _identity) -> dict[str, int]:
    """Write ``annotations/instances_<split>.json`` of ``root`` as ``<out_dir>/<stem>.png`` + ``<stem>.json``.

    Annotations of an image, in id order, become instance ids 1..n (a later one wins where masks overlap;
    one hidden entirely is left out). Crowd regions have no place in the layout and are skipped.

    Returns:
        ``{"images": ..., "instances": ..., "skipped_crowd": ..., "hidden": ...}``.
    """
    root, out_dir = Path(root), Path(out_dir)
    if not overwrite and out_dir.is_dir() and any(out_dir.glob("*.png")):
        raise DataError(f"{out_dir}: already holds PNG masks. Choose an empty output folder or pass "
                        "overwrite=True (--force) to replace them.")
    path = root / "annotations" / f"instances_{split}.json"
    data = read_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)):
        raise DataError(f"{path}: not a COCO instances file (needs lists 'images' and 'annotations').")
    per_image: dict[Any, list[dict]] = {im["id"]: [] for im in data["images"]}
    crowd = 0
    for a in sorted(data["annotations"], key=lambda a: a.get("id", 0)):
        crowd += bool(a.get("iscrowd", 0))
        if not a.get("iscrowd", 0) and a["image_id"] in per_image:
            per_image[a["image_id"]].append(a)
    stems = [Path(im["file_name"]).stem for im in data["images"]]
    if len(set(stems)) != len(stems):
        raise DataError(f"{path}: several images share a file stem; mask files are named by stem.")
    total = hidden = 0
    for im in track(data["images"]):
        h, w = im["height"], im["width"]
        ids = np.zeros((h, w), np.int32)
        cats = []
        for a in per_image[im["id"]]:
            ids[mask_utils.decode(segmentation_to_rle(a["segmentation"], h, w)) > 0] = len(cats) + 1
            cats.append(a["category_id"])
        present = np.unique(ids[ids > 0])
        if len(present) != len(cats):  # renumber so instance ids stay 1..n
            remap = np.zeros(len(cats) + 1, np.int32)
            remap[present] = np.arange(1, len(present) + 1)
            hidden += len(cats) - len(present)
            ids, cats = remap[ids], [cats[k - 1] for k in present]
        stem = Path(im["file_name"]).stem
        write_label(out_dir / f"{stem}.png", ids)
        atomic_write_text(out_dir / f"{stem}.json", json.dumps({"labels": cats}))
        total += len(cats)
    return {"images": len(data["images"]), "instances": total, "skipped_crowd": crowd, "hidden": hidden}
