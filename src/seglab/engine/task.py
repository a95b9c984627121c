"""The contract between the one training loop and a segmentation task.

The trainer (``trainer.py``) and its hooks (``hooks.py``, ``reporting.py``) know nothing about pixels,
boxes or segments: everything task-specific comes through :class:`Task`. ``SemanticTask``
(``engine/semantic.py``), ``InstanceTask`` (``engine/instance.py``) and ``PanopticTask``
(``engine/panoptic.py``) implement it; a new task is a kind in :mod:`seglab.tasks`, a new class with these
members and one entry in :data:`seglab.engine.build.TASK_BUILDERS` (where ``build_task`` picks the task from the
model's registry entry), and the trainer stays as it is (docs/architecture.md, "Adding a task").
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from seglab.errors import ConfigError

Autocast = Callable[[], AbstractContextManager]
"""A zero-argument factory of the run's autocast context (``nullcontext`` in fp32)."""


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of the train split (validation images are only normalised)."""

    crop_size: int = 256
    scale: tuple[float, ...] = (0.5, 2.0)
    hflip: float = 0.5
    rotate: float = 0.0
    color_jitter: float = 0.2
    vflip: float = 0.0
    rot90: bool = False
    elastic: float = 0.0

    def detector_check(self, task: str) -> None:
        """Rotations, quarter turns and elastic warps are semantic-only (boxes would not follow): detector tasks
        refuse them rather than train without them unannounced."""
        for key, on in (("rotate", self.rotate), ("rot90", self.rot90), ("elastic", self.elastic)):
            if on:
                raise ConfigError(f"data.{key} applies to semantic training, not to {task} models; turn it off "
                                  "(data.vflip works for every task).")


@runtime_checkable
class Task(Protocol):
    """What the trainer asks of a task. Every member is used by the loop or a hook; none is optional.

    Attributes:
        name: the checkpoint's ``task`` value (``semantic``, ``instance``, ...).
        headline: ``(metric key, short label)`` pairs printed in each epoch line, most important first.
        default_monitor: the metric ``best.pt`` follows when the user chose none (``train.monitor`` unset).
        monitors: every metric ``train.monitor`` may name (checked before training starts).
        loss_description: what is optimised, in words, for the header and report.md.
        train_set, val_set: the datasets; items are whatever :meth:`collate` batches.
        num_classes: model outputs (instance: categories + background).
        classes: a name per class index, ``len(classes) == num_classes``.
        class_weights: per-class loss weights in use (``None``: unweighted); saved in checkpoints.
    """

    name: str
    headline: tuple[tuple[str, str], ...]
    default_monitor: str
    monitors: tuple[str, ...]
    loss_description: str
    train_set: torch.utils.data.Dataset
    val_set: torch.utils.data.Dataset
    num_classes: int
    classes: list[str]
    class_weights: list[float] | None

    def collate(self) -> Callable[[list], Any]:
        """The DataLoader ``collate_fn`` for both splits."""
        ...

    def model_info(self) -> dict[str, Any]:
        """Checkpoint metadata that rebuilds the input pipeline at inference.

        Keys: ``task, classes, in_channels, mean, std, ignore_index, palette`` (+ ``cat_ids`` for instance).
        """
        ...

    def model_options(self) -> dict[str, Any]:
        """Model options the data fixes (panoptic: ``thing_classes``); they override ``--model-opt``."""
        ...

    def criterion(self) -> nn.Module:
        """The loss module the trainer hands back to :meth:`compute_loss` and :meth:`evaluate`."""
        ...

    def sample_weights(self) -> torch.Tensor:
        """One weight per training image for ``--sampler balanced`` (repeat factors)."""
        ...

    def prepare_batch(self, batch: Any, device: torch.device, channels_last: bool) -> tuple[Any, Any]:
        """``(inputs, targets)`` of a collated batch, on ``device``."""
        ...

    def compute_loss(self, model: nn.Module, criterion: nn.Module, inputs: Any,
                     targets: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward + loss: the scalar to optimise and its named, detached parts (``loss_ce``, ...)."""
        ...

    def evaluate(self, model: nn.Module, loader: torch.utils.data.DataLoader, criterion: nn.Module,
                 device: torch.device, autocast: Autocast) -> tuple[dict[str, Any], float | None]:
        """Validation metrics (identical on every DDP rank) and the mean validation loss (``None``: the task
        has none)."""
        ...

    def validation_forward(self, model: nn.Module, batch: Any, device: torch.device, autocast: Autocast) -> Any:
        """The forward pass :meth:`evaluate` runs on one collated validation batch (at the training scale, unscored):
        what ``--time`` measures to size the epochs, so it times what validation will really do."""
        ...

    def save_samples(self, model: nn.Module, indices: list[int], path: Path, device: torch.device,
                     autocast: Autocast) -> None:
        """A picture of predictions on the validation images ``indices`` (rank 0 only)."""
        ...

    def report_notes(self) -> list[str]:
        """Markdown lines ``report.md`` adds about this task's setup (e.g. the class weights used)."""
        ...
