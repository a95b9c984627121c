"""The task kinds are named once (seglab/tasks.py): every per-task table has exactly those kinds, so a fourth
kind fails here rather than as a bare KeyError in a user's command (issue 26: ablate on panoptic data)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from seglab.errors import ConfigError
from seglab.tasks import KINDS, task_kind


def _tables() -> dict[str, object]:
    from seglab import checkpoint, demo
    from seglab.ablate import report
    from seglab.cli import evaluate_cmd
    from seglab.engine import build
    from seglab.export import api
    from seglab.inference import evaluation, outputs, scoring

    return {"engine.build.TASK_BUILDERS": build.TASK_BUILDERS, "checkpoint.TASKS": checkpoint.TASKS,
            "inference.evaluation.EVALUATORS": evaluation.EVALUATORS, "inference.outputs.WRITERS": outputs.WRITERS,
            "inference.scoring.SCORERS": scoring.SCORERS, "cli.evaluate_cmd.RENDERERS": evaluate_cmd.RENDERERS,
            "export.api.EXPORTERS": api.EXPORTERS, "demo.DEMOS": demo.DEMOS,
            "ablate.report.HEADLINES": report.HEADLINES}


@pytest.mark.parametrize("name", list(_tables()))
def test_every_per_task_table_has_exactly_the_kinds(name: str) -> None:
    assert sorted(_tables()[name]) == sorted(KINDS), f"{name} must have one entry per kind in seglab/tasks.py"


def test_the_task_classes_agree_with_their_kind() -> None:
    from seglab.engine.instance import InstanceTask
    from seglab.engine.panoptic import PanopticTask
    from seglab.engine.semantic import SemanticTask

    classes = {cls.name: cls for cls in (SemanticTask, InstanceTask, PanopticTask)}
    assert sorted(classes) == sorted(KINDS)
    for name, cls in classes.items():
        kind = KINDS[name]
        assert cls.default_monitor == kind.default_monitor and kind.default_monitor in cls.monitors
        assert ("val_loss" in cls.monitors) == (not kind.detector)  # detectors have no validation loss
        assert kind.higher_is_better(kind.default_monitor) and not kind.higher_is_better("val_loss")


def test_every_registered_model_has_a_known_kind() -> None:
    from seglab.models.registry import list_models

    assert {entry.task for entry in list_models()} <= set(KINDS)


def test_the_panoptic_ablation_headline_is_what_panoptic_evaluation_reports() -> None:
    from seglab.inference.panoptic import PANOPTIC_KEYS

    assert set(KINDS["panoptic"].headline) <= set(PANOPTIC_KEYS)


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown task 'depth'; seglab knows semantic, instance, panoptic"):
        task_kind("depth")


def test_tasks_module_imports_no_torch() -> None:
    """Read by the checkpoint reader and the CLI for free: no heavy import."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "src" / "seglab" / "tasks.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "numpy")}
