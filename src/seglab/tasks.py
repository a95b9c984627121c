"""The task kinds seglab knows, named once: what every per-task table is keyed by.

A kind is a plain, frozen description (no torch here, so the CLI, the checkpoint reader and the ablation report
can read it for free): whether its models are detectors, the metric a run and an ablation lead with, the metric
``best.pt`` follows by default, and which metrics fall as they improve. Real per-task behaviour stays in the
per-task classes (``engine/semantic.py``, ``engine/instance.py``, ``engine/panoptic.py``); the tables that pick
one of those by name (builders, evaluators, writers, renderers, scorers, demos, ablation headlines) are keyed by
:data:`KINDS`, and ``tests/test_tasks.py`` checks that each one has exactly these kinds, so a fourth kind fails a
test rather than a user.
"""

from __future__ import annotations

from dataclasses import dataclass

from seglab.errors import ConfigError


@dataclass(frozen=True)
class TaskKind:
    """One task kind.

    Attributes:
        name: the checkpoint's ``task`` value and the key of every per-task table.
        detector: models take a list of images and return detections (Mask R-CNN, Panoptic FPN); validation
            batches hold images and ground truth, not training targets, and there is no validation loss.
        headline: the metrics an ablation (and a run's summary) leads with, most important first.
        default_monitor: what ``best.pt`` follows when ``train.monitor`` is unset.
        lower_is_better: the metrics that fall as the model improves (every other metric rises).
    """

    name: str
    detector: bool
    headline: tuple[str, ...]
    default_monitor: str
    lower_is_better: tuple[str, ...] = ("val_loss",)

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger ``metric`` is better (scores), or a smaller one (losses)."""
        return metric not in self.lower_is_better and "loss" not in metric


SEMANTIC = TaskKind("semantic", detector=False, headline=("mean_iou", "boundary_iou"), default_monitor="mean_iou")
INSTANCE = TaskKind("instance", detector=True, headline=("mask_AP", "box_AP"), default_monitor="mask_AP",
                    lower_is_better=())
PANOPTIC = TaskKind("panoptic", detector=True, headline=("PQ", "PQ_th", "PQ_st"), default_monitor="PQ",
                    lower_is_better=())

KINDS: dict[str, TaskKind] = {k.name: k for k in (SEMANTIC, INSTANCE, PANOPTIC)}
"""Every task kind by name, in the order help texts list them."""


def task_kind(name: str) -> TaskKind:
    """The kind called ``name``; an unknown name is a clear error naming the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; seglab knows {', '.join(KINDS)}.") from None
