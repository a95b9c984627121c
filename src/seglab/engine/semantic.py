"""The semantic-segmentation task: folder datasets, the configured loss, confusion-matrix metrics, panels.

It implements :class:`~seglab.engine.task.Task` for the task-agnostic trainer (``trainer.py``); the instance
task implements the same members with Mask R-CNN targets and COCO AP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.data.io import DEFAULT_MAX_PIXELS
from seglab.engine.task import Augment, Autocast
from seglab.errors import ConfigError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def default_norm(in_channels: int, mean: list[float] | None, std: list[float] | None) -> tuple[list, list]:
    """The normalization a run uses: the configured one, else ImageNet's (RGB) or 0.5/0.25 (other)."""
    if mean is not None and std is not None:
        if len(mean) != in_channels or len(std) != in_channels:
            raise ConfigError(f"data.mean/data.std need {in_channels} values (one per input channel); "
                              f"got {len(mean)} and {len(std)}.")
        return list(mean), list(std)
    if in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return [0.5] * in_channels, [0.25] * in_channels


def pad_collate(ignore_index: int, with_sizes: bool = False):
    """Batch images of different sizes by padding to the largest (image 0, mask ``ignore_index``).

    With ``with_sizes`` a batch that needed padding is ``(images, masks, sizes)``, ``sizes`` ``(N, 2)`` the true
    ``(H, W)`` of each image: validation under ``data.resize`` scales each image alone, so it must know where
    padding starts. Batches of one size (every training batch: crops) stay ``(images, masks)``.
    """

    def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        h = max(img.shape[-2] for img, _ in batch)
        w = max(img.shape[-1] for img, _ in batch)
        images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=batch[0][0].dtype)
        masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.int64)
        for i, (img, m) in enumerate(batch):
            images[i, :, : img.shape[-2], : img.shape[-1]] = img
            masks[i, : m.shape[-2], : m.shape[-1]] = m
        sizes = torch.tensor([list(img.shape[-2:]) for img, _ in batch], dtype=torch.int64)
        return (images, masks, sizes) if with_sizes and bool((sizes != torch.tensor([h, w])).any()) else (images, masks)

    return collate


def resized_logits(model: nn.Module, images: torch.Tensor, long_side: int, autocast: Autocast) -> torch.Tensor:
    """Logits ``(N, K, H, W)`` of normalized images ``(N, C, H, W)`` of one size run at ``long_side``
    (``data.resize``) and scaled back bilinearly, as ``seglab evaluate`` scores them (upsampled scores, then the
    argmax)."""
    from seglab.data.resize import resize_long_side, restore_size

    with autocast():
        logits = model(resize_long_side(images, long_side))
    return restore_size(logits.float(), images.shape[-2:])


class SemanticTask:
    """Per-pixel classification on the folder layout (implements :class:`~seglab.engine.task.Task`).

    Args:
        root: dataset folder (``images/<split>/``, ``labels/<split>/``).
        num_classes: ``None``: from ``classes.txt``, else the largest training label + 1.
        mean, std: input normalization; ``None``: ImageNet's for RGB, 0.5/0.25 otherwise.
        ignore_index, allow_ignore_class: the label value left out of loss and metrics; one inside
            ``[0, num_classes)`` would drop a real class and is refused unless ``allow_ignore_class``.
        loss: loss spec for :func:`seglab.losses.build_loss` (``ce``, ``wce``, ``ce+0.5*dice``, ...).
        class_weights: per-class loss weights; ``None`` with a ``wce`` loss: computed from the training
            labels by ``weight_method`` (median frequency or inverse frequency).
        resize: ``data.resize``: every image scaled to this long side (training before the crop; validation
            per image, scored at the original size against the original labels).
    """

    name = "semantic"
    headline = (("mean_iou", "mIoU"), ("pixel_accuracy", "pixel_acc"))
    default_monitor = "mean_iou"
    monitors = ("mean_iou", "pixel_accuracy", "mean_accuracy", "mean_dice", "fw_iou", "val_loss")

    def __init__(self, root: str, *, train_split: str = "train", val_split: str = "val",
                 num_classes: int | None = None, in_channels: int = 3, ignore_index: int = 255,
                 allow_ignore_class: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                 mean: list[float] | None = None, std: list[float] | None = None,
                 augment: Augment = Augment(), loss: str = "ce", class_weights: list[float] | None = None,
                 weight_method: str = "median", resize: int | None = None) -> None:
        from seglab.data.semantic.dataset import SegmentationFolder
        from seglab.data.transforms import build_eval_transforms, build_train_transforms

        if not root:
            raise ConfigError("no dataset given: pass --data DIR (a folder with images/ and labels/).")
        self.root, self.train_split, self.in_channels = root, train_split, in_channels
        self.mean, self.std = default_norm(in_channels, mean, std)
        common = dict(in_channels=in_channels, ignore_index=ignore_index, num_classes=num_classes,
                      max_pixels=max_pixels)
        a = augment
        train_tf = build_train_transforms(a.crop_size, scale=tuple(a.scale), hflip=a.hflip, rotate=a.rotate,
                                          color_jitter=a.color_jitter, mean=self.mean, std=self.std,
                                          ignore_index=ignore_index, vflip=a.vflip, rot90=a.rot90,
                                          elastic=a.elastic, resize=resize)
        self.resize = resize  # validation: images scaled alone, scores back at the label's size
        self.train_set = SegmentationFolder(root, train_split, transforms=train_tf, **common)
        self.val_set = SegmentationFolder(root, val_split, transforms=build_eval_transforms(self.mean, self.std),
                                          **common)
        self.num_classes = num_classes or self.train_set.num_classes or self._infer_classes()
        self.classes = list(self.train_set.classes)[: self.num_classes]
        if len(self.classes) < self.num_classes:
            self.classes += [f"class_{i}" for i in range(len(self.classes), self.num_classes)]
        if ignore_index < self.num_classes and not allow_ignore_class:
            raise ConfigError(f"--ignore-index {ignore_index} is class {ignore_index} "
                              f"({self.classes[ignore_index]!r}) of the {self.num_classes} classes in {root}: its "
                              "pixels would silently never be trained or scored. Use the label value that marks "
                              "unlabelled pixels (often 255), or pass --allow-ignore-class if dropping it is meant.")
        self.ignore_index = ignore_index
        self.palette = self.train_set.palette
        self.loss = loss
        self.loss_description = f"loss `{loss}`"
        self.class_weights = self._class_weights(class_weights, weight_method)
        self._weights_source = "given" if class_weights is not None else \
            f"{weight_method} frequency, computed from the training split"

    def _infer_classes(self) -> int:
        """Without classes.txt or --num-classes: the largest label value in the training split + 1."""
        from seglab.data.io import read_label

        top = 0
        for _, label_path in self.train_set.samples:
            lab = read_label(label_path)
            valid = lab[lab != self.train_set.ignore_index]
            top = max(top, int(valid.max(initial=0)))
        return top + 1

    def _class_weights(self, given: list[float] | None, method: str) -> list[float] | None:
        """The given weights (checked), else computed from the training labels when the loss needs them."""
        if given is not None:
            if len(given) != self.num_classes:
                raise ConfigError(f"train.class_weights has {len(given)} values but the data has "
                                  f"{self.num_classes} classes.")
            return list(given)
        if "wce" not in self.loss:
            return None
        from seglab.data.semantic.stats import class_weights

        return list(class_weights(self.root, self.train_split, self.num_classes, method=method,
                                  ignore_index=self.ignore_index))

    # --- pieces the trainer asks for -------------------------------------------------------------
    def collate(self):
        return pad_collate(self.ignore_index, with_sizes=self.resize is not None)

    def model_info(self) -> dict[str, Any]:
        """What a checkpoint must carry so inference can rebuild the input pipeline."""
        return {"task": "semantic", "classes": self.classes, "in_channels": self.in_channels,
                "mean": self.mean, "std": self.std, "ignore_index": self.ignore_index,
                "palette": None if self.palette is None else np.asarray(self.palette).tolist()}

    def model_options(self) -> dict[str, Any]:
        """Nothing: the model's options are the user's."""
        return {}

    def criterion(self) -> nn.Module:
        """The configured loss (class weights and ignore label applied)."""
        from seglab.losses import build_loss

        return build_loss(self.loss, self.num_classes, class_weights=self.class_weights,
                          ignore_index=self.ignore_index)

    def report_notes(self) -> list[str]:
        """The class weights the loss used, and where they came from."""
        if self.class_weights is None:
            return []
        return [f"Class weights ({self._weights_source}): " + ", ".join(f"{w:.3g}" for w in self.class_weights)]

    def sanity_bar(self, model_iou: float, classes: list[str]) -> list[str]:
        """report.md's section on the trivial baselines of the validation split
        (:func:`seglab.metrics.baselines.split_baselines`), read against the best epoch's mIoU."""
        from seglab.metrics.baselines import split_baselines

        bar = split_baselines(self.root, self.val_set.split, self.num_classes, self.ignore_index)
        return bar.markdown(model_iou, classes)

    def sample_weights(self) -> torch.Tensor:
        """Repeat-factor sampling weights (LVIS) from the classes present in each training label."""
        from seglab.data.io import read_label
        from seglab.data.sampling import repeat_factors

        present = []
        for _, label_path in self.train_set.samples:
            vals = np.unique(read_label(label_path))
            present.append({int(v) for v in vals if v != self.ignore_index and v < self.num_classes})
        return repeat_factors(present)

    def prepare_batch(self, batch: tuple[torch.Tensor, ...], device: torch.device,
                      channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = batch[:2]  # a third item (sizes, with data.resize) is validation's
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, masks.to(device, non_blocking=True)

    def compute_loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor,
                     masks: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward + loss; an auxiliary head (PSPNet, DeepLab) adds 0.4 x its loss, as in PSPNet."""
        out = model(images)
        if isinstance(out, dict):
            loss = criterion(out["out"], masks)
            parts = dict(getattr(criterion, "last_components", {}))
            aux = 0.4 * criterion(out["aux"], masks)
            parts["loss_aux"] = aux.detach()
            return loss + aux, parts
        loss = criterion(out, masks)
        return loss, dict(getattr(criterion, "last_components", {}))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, criterion: nn.Module, device: torch.device,
                 autocast: Autocast) -> tuple[dict[str, Any], float]:
        """Dataset-level metrics from one confusion matrix (reduced over ranks) and the mean val loss."""
        from seglab.distributed import all_reduce_mean
        from seglab.metrics.confusion import SegMetrics

        metrics = SegMetrics(self.num_classes, ignore_index=self.ignore_index, device=device)
        total, batches = 0.0, 0
        for batch in loader:
            for logits, truth in self.validation_forward(model, batch, device, autocast):
                if (truth != self.ignore_index).any():
                    total += float(criterion(logits, truth))
                    batches += 1
                metrics.update(logits.argmax(1), truth)
        metrics.reduce()
        return metrics.compute(), all_reduce_mean(total / max(1, batches), device)

    @torch.no_grad()
    def validation_forward(self, model: nn.Module, batch: tuple[torch.Tensor, ...], device: torch.device,
                           autocast: Autocast) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(float logits, truth)`` pairs :meth:`evaluate` scores for one collated batch (what ``--time`` times):
        with ``data.resize`` each image runs at the training scale and its logits return to the label's size."""
        images, masks = batch[0].to(device), batch[1].to(device)
        if self.resize is None:
            with autocast():
                logits = model(images)
            return [(logits.float(), masks)]
        if len(batch) == 2:  # images of one size: the batch at the training scale, scored at its size
            return [(resized_logits(model, images, self.resize, autocast), masks)]
        # padded: each image alone (without its padding) at the training scale, scored at its own size
        return [(resized_logits(model, images[i:i + 1, :, :h, :w], self.resize, autocast), masks[i:i + 1, :h, :w])
                for i, (h, w) in enumerate(batch[2].tolist())]

    @torch.no_grad()
    def save_samples(self, model: nn.Module, indices: list[int], path: Path, device: torch.device,
                     autocast: Autocast) -> None:
        """input | truth | prediction | error panels for fixed validation images."""
        from seglab import viz

        rows = []
        for i in indices:
            image, mask = self.val_set[i]
            if self.resize is None:
                with autocast():
                    logits = model(image[None].to(device))
            else:
                logits = resized_logits(model, image[None].to(device), self.resize, autocast)
            pred = logits.float().argmax(1)[0].cpu().numpy()
            rows.append((viz.to_uint8_image(image, self.mean, self.std), mask.numpy(), pred))
        palette = self.palette if self.palette is not None else viz.default_palette(max(self.num_classes, 2))
        viz.save_panels(path, rows, palette, class_names=self.classes, ignore_index=self.ignore_index,
                        with_error=True, titles=[self.val_set.stems[i] for i in indices])
