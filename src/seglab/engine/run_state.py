"""A run's state as a checkpoint holds it, and back: what ``best.pt`` / ``last.pt`` carry and a resume restores.

Kept beside the trainer (which calls these with itself) so the loop stays short; the keys are listed in
``seglab/checkpoint.py``. Hooks carry their own resume state (``Hook.state_dict``) under ``"hooks"``;
:func:`resume_run` restores a run and applies what a ``--resume`` asks (more epochs, a new time budget).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from seglab.engine.state import EpochRecord, TrainState, rng_state, set_rng_state


def run_state(trainer: Any, resume: bool = True) -> dict[str, Any]:
    """Everything inference needs (task metadata, weights, config) and, with ``resume``, everything an exact
    resume needs (optimizer moments, schedule, RNG: most of the file for AdamW)."""
    t = trainer
    weights = t.ema.module if t.ema is not None else t.raw_model
    state = {**t.task.model_info(), "model": t.model_spec, "model_state": weights.state_dict(),
             "config": t.cfg.to_dict(), "epoch": t.state.epoch, "step": t.state.step,
             "metrics": t.state.history[-1] if t.state.history else {},
             "trainer": t.state.to_dict(), "class_weights": t.task.class_weights}
    if not resume:
        return state
    state.update({"optimizer": t.optimizer.state_dict(), "scheduler": t.schedule.state_dict(),
                  "scaler": t.precision.scaler.state_dict(), "rng": rng_state(), "epoch_record": t.record.to_dict(),
                  "hooks": hook_states(t.hooks)})
    if t.ema is not None:
        state["raw_model_state"] = t.raw_model.state_dict()
        state["ema"] = t.ema.state_dict()
    return state


def restore_run(trainer: Any, ck: dict[str, Any]) -> None:
    """Put a checked ``last.pt`` (``rundir.read_resume_checkpoint``) back into the trainer."""
    t = trainer
    t.raw_model.load_state_dict(ck.get("raw_model_state", ck["model_state"]))
    t.optimizer.load_state_dict(ck["optimizer"])
    t.schedule.load_state_dict(ck["scheduler"])
    t.precision.scaler.load_state_dict(ck["scaler"])
    if t.ema is not None and "ema" in ck:
        t.ema.load_state_dict(ck["ema"])
    t.state = TrainState.from_dict(ck["trainer"])
    if t.state.epoch_pos and "epoch_record" in ck:  # saved mid-epoch: its losses so far count too
        t.record = EpochRecord.resumed(ck["epoch_record"])
    # older files kept the best value only in the trainer's counters
    load_hook_states(t.hooks, ck.get("hooks") or {"BestTracker": {"best": t.state.best,
                                                                   "bad_epochs": t.state.bad_epochs}})
    set_rng_state(ck["rng"])


def load_hook_states(hooks: list[Any], states: dict[str, Any]) -> None:
    """Give each hook its saved state (:func:`hook_states`); hooks without one keep theirs."""
    for key, hook in hook_keys(hooks).items():
        if isinstance(states.get(key), dict):
            hook.load_state_dict(states[key])


def hook_keys(hooks: list[Any]) -> dict[str, Any]:
    """Each hook by a stable name: its class name (``BestTracker``), ``#2`` ... for a second of a class."""
    keys: dict[str, Any] = {}
    for hook in hooks:
        name = type(hook).__name__
        key, n = name, 2
        while key in keys:
            key, n = f"{name}#{n}", n + 1
        keys[key] = hook
    return keys


def hook_states(hooks: list[Any]) -> dict[str, dict[str, Any]]:
    """The resume state of every hook that has one (``Hook.state_dict``), by :func:`hook_keys` name."""
    states = {key: hook.state_dict() for key, hook in hook_keys(hooks).items() if hasattr(hook, "state_dict")}
    return {key: state for key, state in states.items() if state}


def resume_run(trainer: Any, given: Iterable[str] = ()) -> bool:
    """Continue the run in ``trainer.out``: restore its ``last.pt`` (checked) and apply what this resume asks;
    returns True when nothing is left to train (the run finished, or its ``--time`` budget is spent).

    What the user asks is a value of ``train.epochs`` / ``train.time`` other than the run's, named in ``given``
    (the flags) or, with no ``given``, in a Python config: ``--time T`` is a new budget from now (and, with epoch
    times measured, the epochs that fit it); ``--epochs N`` trains to N epochs and drops the old budget. Without
    either, a ``--time`` run continues with the budget it had left (its ``TimeBudget`` state).
    """
    from seglab.config.values import parse_duration
    from seglab.engine.budget import TimeBudget
    from seglab.engine.rundir import read_resume_checkpoint

    t, path = trainer, trainer.out / "last.pt"
    ck = read_resume_checkpoint(path, t.cfg.to_dict(), t.model_spec)
    restore_run(t, ck)
    budget = next((h for h in t.hooks if isinstance(h, TimeBudget)), None)
    if budget is not None:
        budget.started = t.created  # this session's clock counts from its start, data scan and build included
    saved, given = (ck.get("config") or {}).get("train") or {}, set(given)
    asked = {k for k in ("epochs", "time") if (f"train.{k}" in given or not given) and saved.get(k) != getattr(t.t, k)}
    if budget is not None and "time" in asked:
        budget.restart(parse_duration(t.t.time))
        if budget.times and "epochs" not in asked:
            t.set_epochs(max(t.state.epoch + 1, budget.fitted(t.state.epoch)))
    elif budget is not None and "epochs" in asked:
        t.hooks.remove(budget)
        t.cfg = dataclasses.replace(t.cfg, train=dataclasses.replace(t.t, time=None))
        t.t, budget = t.cfg.train, None
    if budget is not None and budget.spent_up():
        t.log(f"--time {t.t.time} leaves no time for a step and the closing evaluation ({budget.finish_s:.0f} s "
              f"measured) after the start; give more time." if "time" in asked else
              f"{t.out} already used its --time {budget.budget_s / 60:.1f} min budget ({t.state.epoch} of "
              f"{t.t.epochs} epochs); pass --time T (a new budget) or --epochs N with --resume to train longer.")
        return True
    if t.state.epoch >= t.t.epochs:
        t.log(f"{t.out} already finished its {t.state.epoch} epochs; pass --epochs N (N > {t.state.epoch}) with "
              "--resume to train longer.")
        return True
    t.log(f"resumed from {path} at epoch {t.state.epoch + 1}, step {t.state.step}")
    return False
