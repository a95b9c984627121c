"""The parts of a run the trainer assembles: the task, the (wrapped) model, the data loaders, the optimizer.

``build_task`` is the one reader of the config for tasks; every other builder takes plain values, so tests
and benchmarks can build one part without a whole config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seglab import distributed as D
from seglab.config import RunConfig
from seglab.engine.task import Augment, Task
from seglab.errors import ConfigError
from seglab.tasks import INSTANCE, PANOPTIC, SEMANTIC


def _data_fields(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.data
    return {"root": d.root, "train_split": d.train_split, "val_split": d.val_split, "num_classes": d.num_classes,
            "in_channels": d.in_channels, "resize": d.resize,
            "augment": Augment(d.crop_size, tuple(d.scale), d.hflip, d.rotate, d.color_jitter, d.vflip, d.rot90,
                               d.elastic)}


def _semantic(cfg: RunConfig) -> Task:
    from seglab.engine.semantic import SemanticTask

    d, t = cfg.data, cfg.train
    return SemanticTask(**_data_fields(cfg), ignore_index=d.ignore_index, allow_ignore_class=d.allow_ignore_class,
                        max_pixels=d.max_pixels, mean=d.mean,
                        std=d.std, loss=t.loss, class_weights=t.class_weights, weight_method=t.weight_method)


def _instance(cfg: RunConfig) -> Task:
    from seglab.engine.instance import InstanceTask

    return InstanceTask(**_data_fields(cfg))


def _panoptic(cfg: RunConfig) -> Task:
    from seglab.engine.panoptic import PanopticTask

    return PanopticTask(**_data_fields(cfg))


# registry task name (``register_model(..., task=...)``) -> the task built from a run config
TASK_BUILDERS: dict[str, Callable[[RunConfig], Task]] = {SEMANTIC.name: _semantic, INSTANCE.name: _instance,
                                                         PANOPTIC.name: _panoptic}


def resolve_model(cfg: RunConfig, device: torch.device, given: Iterable[str] = ()) -> tuple[RunConfig, str | None]:
    """``cfg`` with the plan for the data and the device applied when ``model.name`` is unset, and the reason.

    A forgotten ``--model`` must not mean the 31 M-parameter classic U-Net on a laptop CPU: it means what
    ``seglab plan`` would choose (:mod:`seglab.plan.recipe`). Planned values are applied except where the
    user chose: keys in ``given`` (``section.key``: the flags, ``--set`` items and config-file keys they
    wrote) and values that differ from the defaults (configs built in Python) are kept; ``--model-opt``
    values apply on top of the planned options. The choice is written to config.yaml like any other value.
    """
    if cfg.model.name is not None or not cfg.data.root:
        return cfg, None
    from seglab.plan.apply import apply_plan

    return apply_plan(cfg, device.type, given)


def merge_model_options(user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The user's model options plus those the data fixes (panoptic ``thing_classes``); a user value that
    contradicts the data is refused rather than silently replaced."""
    for key, value in data.items():
        if key in user and user[key] != value:
            raise ConfigError(f"--model-opt {key}={user[key]}: the data fixes {key}={value} (panoptic.json or the "
                              f"COCO categories' isthing). Drop --model-opt {key}, or change the data.")
    return {**user, **data}


def resolve_monitor(cfg: RunConfig, default: str) -> RunConfig:
    """``cfg`` with ``train.monitor`` set to ``default`` when the user chose none (a copy; ``cfg`` is kept)."""
    if cfg.train.monitor is not None:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, monitor=default))


def build_task(cfg: RunConfig) -> Task:
    """The task the configured model's registry entry names, built from the config's plain fields.

    This is the only reader of the config for tasks: tasks themselves never see a ``RunConfig``, and
    nothing here changes ``cfg``.
    """
    from seglab.models.registry import get_entry

    kind = get_entry(cfg.model.name).task
    if kind not in TASK_BUILDERS:
        raise ConfigError(f"model {cfg.model.name!r} is a {kind} model; training supports "
                          f"{', '.join(TASK_BUILDERS)} models so far.")
    return TASK_BUILDERS[kind](cfg)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on norm weights and biases (1-D parameters), decay elsewhere."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9,
                    nesterov: bool = False) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over :func:`param_groups`."""
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


@dataclass
class BuiltModel:
    """The model three ways: ``raw`` (what is saved), ``model`` (what is called: DDP / compiled), ``spec``."""

    raw: nn.Module
    model: nn.Module
    spec: dict[str, Any]  # {"name", "num_classes", "options"}: the checkpoint's "model" entry


def build_model(name: str, num_classes: int, options: dict[str, Any], in_channels: int, dist: D.DistInfo, *,
                grad_checkpointing: bool = False, sync_bn: bool = False, channels_last: bool = False,
                compile: bool = False) -> BuiltModel:
    """Build a registered model on ``dist.device`` with the run's memory and speed switches."""
    from seglab.models import registry

    options = dict(options)
    if "in_channels" in registry.get_entry(name).options() and "in_channels" not in options:
        options["in_channels"] = in_channels
    model = registry.build_model(name, num_classes, **options)
    if grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ConfigError(f"model {name!r} has no gradient checkpointing switch.")
        model.set_grad_checkpointing(True)
    if sync_bn and dist.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(dist.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    raw = model
    if dist.distributed:
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return BuiltModel(raw, torch.compile(model) if compile else model,
                      {"name": name, "num_classes": num_classes, "options": options})


@dataclass
class Loaders:
    """The training loader with its resumable sampler, and the sharded validation loader."""

    sampler: D.EpochSampler
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader


def build_loaders(task: Task, dist: D.DistInfo, batch_size: int, workers: int, seed: int,
                  balanced: bool = False, repeats: int = 1) -> Loaders:
    """Seeded, shardable loaders: the order and every augmentation depend only on (seed, epoch, position);
    an epoch is ``repeats`` passes over the training split."""
    weights = task.sample_weights() if balanced else None
    sampler = D.EpochSampler(len(task.train_set), seed, dist.rank, dist.world_size, weights=weights,
                             repeats=repeats)
    common = dict(num_workers=workers, collate_fn=task.collate(), pin_memory=dist.device.type == "cuda",
                  persistent_workers=False)
    # Own generator: creating an iterator must not draw from the global RNG (exact resume).
    train = torch.utils.data.DataLoader(
        D.SeededDataset(task.train_set), batch_size=batch_size, sampler=sampler, drop_last=True,
        generator=torch.Generator().manual_seed(seed), **common)
    if len(task.train_set) * repeats // max(1, dist.world_size) < batch_size:
        raise ConfigError(f"the training split has {len(task.train_set)} images (x {repeats} repeats), fewer "
                          f"than one batch of {batch_size} per process; lower --batch-size or raise data.repeats.")
    val_sampler = D.EpochSampler(len(task.val_set), 0, dist.rank, dist.world_size, shuffle=False)
    val = torch.utils.data.DataLoader(UnseededDataset(task.val_set), batch_size=batch_size, sampler=val_sampler,
                                      generator=torch.Generator(), **common)
    return Loaders(sampler, train, val)


class UnseededDataset(torch.utils.data.Dataset):
    """Validation wrapper: accepts the sampler's ``(index, seed)`` pairs, ignores the seed."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        return self.dataset[item[0]]


def build_ema(model: nn.Module, decay: float) -> nn.Module | None:
    """An exponential moving average of ``model``'s weights and buffers (``None`` when ``decay`` is 0)."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
