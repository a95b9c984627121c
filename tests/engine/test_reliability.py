"""What a run promises: no non-finite file, exact resume after Ctrl-C/SIGTERM, one run per folder, strict resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seglab.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from seglab.engine.rundir import LOCK_NAME, RunDirError, RunLock, fresh_run_dir
from seglab.engine.safety import NonFiniteWeightsError
from seglab.engine.trainer import NonFiniteLossError, Trainer, train
from seglab.errors import CheckpointError, ConfigError, SeglabError


def _state(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the raw model (weights and BatchNorm buffers) in a checkpoint."""
    ck = read_checkpoint(path)
    return ck.get("raw_model_state", ck["model_state"])


def _assert_same(a: Path, b: Path) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class _InterruptOn(torch.nn.Module):
    """A loss that runs the forward's loss, then interrupts on the n-th call (BN statistics already moved)."""

    def __init__(self, inner: torch.nn.Module, n: int, how: str = "ctrl-c") -> None:
        super().__init__()
        self.inner, self.n, self.calls, self.how = inner, n, 0, how

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = self.inner(logits, target)
        if self.calls == self.n:
            if self.how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        return loss


@pytest.mark.parametrize(("how", "accum", "batch_size", "n"), [
    ("ctrl-c", 1, 4, 3),  # in the middle of step 3's forward/backward
    ("ctrl-c", 2, 2, 6),  # the second micro-batch of a 2-step accumulation window
    ("sigterm", 1, 4, 3),  # SLURM preemption / docker stop
])
def test_interrupt_anywhere_resumes_bit_exactly(tiny_data: Path, tmp_path: Path, tiny_config, how: str, accum: int,
                                                batch_size: int, n: int) -> None:
    common = dict(epochs=2, num_samples=0, accum=accum, batch_size=batch_size)
    train(tiny_config(tiny_data, tmp_path / "ref", **common))
    trainer = Trainer(tiny_config(tiny_data, tmp_path / "cut", **common))
    trainer.criterion = _InterruptOn(trainer.criterion, n, how)
    with pytest.raises(SeglabError, match="interrupted; progress saved"):
        trainer.fit()
    ck = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert ck["step"] == (n - 1) // accum  # only whole optimizer steps are saved
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or how != "sigterm"  # handler restored
    train(tiny_config(tiny_data, tmp_path / "cut", resume=True, **common))
    _assert_same(tmp_path / "ref" / "last.pt", tmp_path / "cut" / "last.pt")  # weights and BN buffers


def test_a_diverging_run_never_saves_nonfinite_weights(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "boom", epochs=3, lr=1e6, optimizer="sgd", num_samples=0)
    with pytest.raises((NonFiniteWeightsError, NonFiniteLossError)) as info:
        train(cfg)
    message = str(info.value)
    for name in ("last.pt", "best.pt"):
        path = tmp_path / "boom" / name
        if path.exists():
            state = read_checkpoint(path)["model_state"]
            assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), name
            load_checkpoint(path)  # a saved file is usable
    if not (tmp_path / "boom" / "last.pt").exists():
        assert "last.pt" not in message  # never points at a file that is not there


def test_nonfinite_buffers_are_never_saved(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    trainer = Trainer(tiny_config(tiny_data, tmp_path / "bn", epochs=1, num_samples=0))
    bn = next(m for m in trainer.raw_model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(float("inf"))  # what lr=1e6 does to the statistics while the loss may stay finite
    with pytest.raises(NonFiniteWeightsError, match=r"running_var.*No checkpoint was written"):
        trainer.fit()
    assert not (tmp_path / "bn" / "last.pt").exists() and not (tmp_path / "bn" / "best.pt").exists()


def test_use_refuses_a_checkpoint_with_nonfinite_tensors(tmp_path: Path, semantic_run: dict) -> None:
    ck = read_checkpoint(semantic_run["ckpt"])
    key = next(k for k, v in ck["model_state"].items() if v.is_floating_point())
    ck["model_state"][key] = ck["model_state"][key].clone().fill_(float("nan"))
    ck.pop("path")
    save_checkpoint(tmp_path / "nan.pt", ck)
    with pytest.raises(CheckpointError, match=f"NaN/Inf.*{key}"):
        load_checkpoint(tmp_path / "nan.pt")


def test_a_nonfinite_validation_is_never_best(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    from seglab.engine.hooks import BestTracker

    class _Loop:
        def __init__(self, row: dict) -> None:
            from seglab.engine.state import EpochRecord, TrainState
            self.state, self.record, self.logged = TrainState(), EpochRecord(), []
            self.record.row = row

        def log(self, msg: str) -> None:
            self.logged.append(msg)

    tracker = BestTracker("mean_iou")
    loop = _Loop({"epoch": 1, "mean_iou": 0.9, "val_loss": float("nan")})
    tracker.after_epoch(loop)
    assert loop.state.best is None and not loop.record.improved and "not finite" in loop.logged[0]
    loop = _Loop({"epoch": 2, "mean_iou": 0.5, "val_loss": 0.3})
    tracker.after_epoch(loop)
    assert loop.state.best == 0.5 and loop.record.improved


def test_monitor_typo_is_refused_before_training(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"--monitor 'miou'.*Did you mean `mean_iou`"):
        train(tiny_config(tiny_data, tmp_path / "m", monitor="miou"))
    assert not (tmp_path / "m").exists()


def test_ignore_index_inside_the_classes_needs_consent(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "ig", epochs=1, num_samples=0)
    cfg.data.ignore_index = 1
    with pytest.raises(ConfigError, match=r"--ignore-index 1 is class 1.*--allow-ignore-class"):
        train(cfg)
    cfg.data.allow_ignore_class = True
    assert train(cfg)["epochs"] == 1


# --- the run directory ------------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with RunLock(out):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
        other = RunLock(out)
        other.path.write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": 0}))
        with pytest.raises(RunDirError, match=f"in use by another seglab run \\(pid {os.getppid()}"):
            other.__enter__()
    (out / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename, "started": 0}))
    with RunLock(out) as lock:
        assert "no longer running" in lock.note
    assert not (out / LOCK_NAME).exists()  # released


def test_training_into_a_locked_folder_is_refused(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": 0}))
    with pytest.raises(RunDirError, match="in use"):
        train(tiny_config(tiny_data, out, resume=True))  # a resume may not share a folder with a live run
    summary = train(tiny_config(tiny_data, out, epochs=1, num_samples=0))  # a new run goes next door
    assert summary["out"] == str(tmp_path / "busy2") and (out / LOCK_NAME).exists()


def test_the_current_folder_as_out_gets_a_numbered_sibling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("an earlier run")
    monkeypatch.chdir(tmp_path / "r")
    assert fresh_run_dir(".") == tmp_path / "r2"


def test_a_new_run_never_overwrites_an_old_one(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    first = train(tiny_config(tiny_data, tmp_path / "exp", epochs=1, num_samples=0))
    before = (tmp_path / "exp" / "last.pt").read_bytes()
    second = train(tiny_config(tiny_data, tmp_path / "exp", epochs=1, num_samples=0, seed=1))
    assert first["out"] == str(tmp_path / "exp") and second["out"] == str(tmp_path / "exp2")
    assert (tmp_path / "exp" / "last.pt").read_bytes() == before
    assert fresh_run_dir(tmp_path / "exp") == tmp_path / "exp3"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        fresh_run_dir(tmp_path / "file")


@pytest.fixture
def finished_run(tiny_data: Path, tmp_path: Path, tiny_config) -> tuple[Path, Path]:
    train(tiny_config(tiny_data, tmp_path / "run", epochs=1, num_samples=0))
    return tiny_data, tmp_path / "run"


@pytest.mark.parametrize(("change", "key"), [
    ({"lr": 0.5}, "train.lr: 0.01 in the run, 0.5 now"),
    ({"optimizer": "sgd"}, "train.optimizer: 'adamw' in the run, 'sgd' now"),
    ({"seed": 3}, "train.seed"),
])
def test_resume_refuses_a_different_run(finished_run: tuple[Path, Path], tiny_config, change: dict,
                                        key: str) -> None:
    data, run = finished_run
    cfg = tiny_config(data, run, epochs=1, num_samples=0, resume=True, **change)
    with pytest.raises(RunDirError, match=key.replace("(", r"\(")):
        train(cfg)


def test_resume_refuses_other_data_and_a_weights_only_file(finished_run: tuple[Path, Path], tmp_path: Path,
                                                           tiny_config) -> None:
    import shutil

    data, run = finished_run
    other = Path(shutil.copytree(data, tmp_path / "other"))
    with pytest.raises(RunDirError, match="data.root"):
        train(tiny_config(other, run, epochs=1, num_samples=0, resume=True))
    ck = read_checkpoint(run / "last.pt")
    for k in ("optimizer", "scheduler", "scaler", "rng", "trainer", "path"):
        ck.pop(k)
    weights_only = tmp_path / "weights"
    weights_only.mkdir()
    save_checkpoint(weights_only / "last.pt", ck)
    with pytest.raises(RunDirError, match="no optimizer, scheduler, scaler, trainer, rng state"):
        train(tiny_config(data, weights_only, epochs=1, num_samples=0, resume=True))


def test_resume_may_extend_a_finished_run(finished_run: tuple[Path, Path], tiny_config, capsys) -> None:
    data, run = finished_run
    summary = train(tiny_config(data, run, epochs=2, num_samples=0, resume=True))
    assert summary["epochs"] == 2 and summary["out"] == str(run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    summary = train(tiny_config(data, run, epochs=2, num_samples=0, resume=True))
    assert summary["epochs"] == 2
    assert "already finished its 2 epochs" in capsys.readouterr().err
    # a no-op resume leaves every file as it was (report.md kept its minutes, no "0.01 min"; issue 29.6)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_best_holds_weights_and_metadata_only_and_stale_temps_are_cleaned(tiny_data: Path, tmp_path: Path,
                                                                          tiny_config, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    dead = _dead_pid()
    stale = out / f".last.pt.{dead}.abcd1234.tmp.pt"  # what a save killed mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    train(tiny_config(tiny_data, out, epochs=1, num_samples=0, optimizer="adamw"))
    assert not stale.exists() and "temporary file(s) left by an interrupted save" in capsys.readouterr().err
    best, last = read_checkpoint(out / "best.pt"), read_checkpoint(out / "last.pt")
    assert not {"optimizer", "scheduler", "scaler", "rng", "epoch_record"} & set(best)
    assert {"optimizer", "scheduler", "scaler", "rng"} <= set(last)
    assert (out / "best.pt").stat().st_size < 0.6 * (out / "last.pt").stat().st_size  # AdamW moments stay in last
    load_checkpoint(out / "best.pt")
