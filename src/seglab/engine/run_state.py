"""A run's state as a checkpoint holds it, and back: what ``best.pt`` / ``last.pt`` carry and a resume restores.

Kept beside the trainer (which calls these with itself) so the loop stays short; the keys are listed in
``seglab/checkpoint.py``.
"""

from __future__ import annotations

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
                  "scaler": t.precision.scaler.state_dict(), "rng": rng_state(), "epoch_record": t.record.to_dict()})
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
    set_rng_state(ck["rng"])
