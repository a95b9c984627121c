"""The training engine: run directory, accumulation equivalence, exact resume after SIGKILL, non-finite loss."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from seglab.checkpoint import load_checkpoint, read_checkpoint
from seglab.engine import hooks as H
from seglab.engine.task import Task
from seglab.engine.trainer import NonFiniteLossError, Trainer, train
from seglab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ck = read_checkpoint(path)
    return ck.get("raw_model_state", ck["model_state"])


def test_run_directory_is_complete(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    out = tmp_path / "run"
    summary = train(tiny_config(tiny_data, out, epochs=2))
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "curves.png", "confusion.png", "report.md"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert 0.0 <= float(rows[-1]["mean_iou"]) <= 1.0
    assert summary["epochs"] == 2 and summary["steps"] == 2 * (16 // 4)
    model, info = load_checkpoint(out / "best.pt")
    assert info.classes == ["background", "square", "disc"] and info.task == "semantic"
    assert info.config["train"]["monitor"] == "mean_iou" and summary["monitor"] == "mean_iou"
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    report = (out / "report.md").read_text()
    assert "mean_iou" in report and "| disc |" in report


def test_config_yaml_reruns_identically(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    from seglab.config import load_config

    cfg = tiny_config(tiny_data, tmp_path / "a", epochs=1)
    assert cfg.train.monitor is None  # not chosen: the task's default is used, and written down
    train(cfg)
    assert cfg.train.monitor is None  # training never changes the caller's config
    again = load_config(tmp_path / "a" / "config.yaml")
    assert again.train.monitor == "mean_iou"
    again.train.monitor = None
    assert again == cfg


def test_accumulation_equals_larger_batch(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    """accum=2 x batch 2 gives the same update as batch 4 (no BatchNorm, no ignore pixels, SGD)."""
    common = dict(epochs=1, optimizer="sgd", schedule="constant", lr=0.05, num_samples=0)
    a = tiny_config(tiny_data, tmp_path / "big", batch_size=4, accum=1, **common)
    b = tiny_config(tiny_data, tmp_path / "acc", batch_size=2, accum=2, **common)
    for cfg in (a, b):
        cfg.model.options["norm"] = "none"
        cfg.data.hflip = 0.0
        train(cfg)
    wa, wb = _weights(tmp_path / "big" / "last.pt"), _weights(tmp_path / "acc" / "last.pt")
    assert read_checkpoint(tmp_path / "acc" / "last.pt")["step"] == 4
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


KILLER = textwrap.dedent("""
    import os, signal, sys
    import seglab.engine.trainer as T
    from seglab.config import load_config
    orig = T.Trainer.save
    def save(self, name="last.pt"):
        orig(self, name)
        if name == "last.pt" and self.state.step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # as hard as a power cut: no cleanup
    T.Trainer.save = save
    T.train(load_config(sys.argv[1]))
""")


def test_sigkill_mid_epoch_then_resume_is_bit_exact(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    ref = tiny_config(tiny_data, tmp_path / "ref", epochs=2, save_every=1, num_samples=0)
    train(ref)
    cfg = tiny_config(tiny_data, tmp_path / "killed", epochs=2, save_every=1, num_samples=0)
    cfg_path = tmp_path / "killed.yaml"
    cfg_path.write_text(cfg.to_yaml())
    proc = subprocess.run([sys.executable, "-c", KILLER, str(cfg_path), "6"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    ck = read_checkpoint(tmp_path / "killed" / "last.pt")
    assert ck["step"] == 6 and ck["epoch"] == 1 and ck["trainer"]["epoch_pos"] == 8  # mid-epoch 2
    cfg.train.resume = True
    train(cfg)
    final, expected = _weights(tmp_path / "killed" / "last.pt"), _weights(tmp_path / "ref" / "last.pt")
    assert final.keys() == expected.keys()
    for k in expected:
        assert torch.equal(final[k], expected[k]), k
    rows = list(csv.DictReader((tmp_path / "killed" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


class _NaNAt(torch.nn.Module):
    """Wraps a loss and returns NaN on the n-th call."""

    def __init__(self, inner: torch.nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, logits, target):
        self.calls += 1
        loss = self.inner(logits, target)
        return loss * float("nan") if self.calls == self.n else loss


def test_nonfinite_loss_stops_with_step_and_keeps_last_good(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    trainer = Trainer(tiny_config(tiny_data, tmp_path / "nan", save_every=1, num_samples=0))
    trainer.criterion = _NaNAt(trainer.criterion, 3)
    with pytest.raises(NonFiniteLossError, match="step 3"):
        trainer.fit()
    ck = read_checkpoint(tmp_path / "nan" / "last.pt")
    assert ck["step"] == 2
    for k, v in trainer.raw_model.named_parameters():
        assert torch.equal(v, ck["model_state"][k]), k  # the bad step never touched the weights


def test_skip_nonfinite_counts_skips(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    trainer = Trainer(tiny_config(tiny_data, tmp_path / "skip", skip_nonfinite=True, epochs=1, num_samples=0))
    trainer.criterion = _NaNAt(trainer.criterion, 2)
    summary = trainer.fit()
    assert summary["skipped_steps"] == 1 and summary["steps"] == 4


def test_fp16_on_cpu_is_a_clear_error(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: fp16 is allowed")
    with pytest.raises(ConfigError, match="bf16"):
        Trainer(tiny_config(tiny_data, tmp_path / "x", precision="fp16"))


@pytest.mark.parametrize("extra", [dict(precision="bf16", channels_last=True), dict(ema=0.9, clip_grad=1.0),
                                   dict(loss="wce", sampler=None), dict(schedule="plateau", optimizer="adam")])
def test_training_options_run(tiny_data: Path, tmp_path: Path, extra: dict, tiny_config) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "opt", epochs=1, num_samples=0)
    extra = dict(extra)
    if "sampler" in extra:
        extra.pop("sampler")
        cfg.data.sampler = "balanced"
    for k, v in extra.items():
        setattr(cfg.train, k, v)
    summary = train(cfg)
    assert summary["steps"] == 4
    assert torch.isfinite(torch.tensor(summary["last"]["train_loss"]))


def test_resume_without_checkpoint_is_a_clear_error(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    from seglab.errors import SeglabError

    with pytest.raises(SeglabError, match="nothing to resume"):
        Trainer(tiny_config(tiny_data, tmp_path / "none", resume=True))


def test_a_chosen_monitor_is_kept(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "m", monitor="val_loss")
    trainer = Trainer(cfg)
    assert trainer.monitor == "val_loss" and trainer.cfg.train.monitor == "val_loss"
    assert trainer.schedule is not None and isinstance(trainer.task, Task)


class _InterruptAt(H.Hook):
    """Raises KeyboardInterrupt (a Ctrl-C) in ``after_epoch`` of the ``epoch``-th epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_epoch(self, trainer) -> None:
        if trainer.state.epoch == self.epoch:
            raise KeyboardInterrupt


def _interrupt_evaluation_at(trainer: Trainer, epoch: int) -> None:
    """Make the EvalHook's evaluation raise KeyboardInterrupt in the ``epoch``-th epoch (before any metric)."""
    (hook,) = [h for h in trainer.hooks if isinstance(h, H.EvalHook)]
    evaluate = hook.evaluate

    def interrupted(*args, **kwargs):
        if trainer.state.epoch == epoch:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    hook.evaluate = interrupted


TIMING = ("epoch_time_s", "images_per_s")  # differ between any two runs


def _rows(out: Path) -> list[dict[str, str]]:
    """metrics.csv without the timing columns."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader((out / "metrics.csv").open())]


@pytest.mark.parametrize("where", ["evaluation", "after_checkpoint"])
def test_ctrl_c_while_ending_an_epoch_keeps_it_open_and_resume_redoes_it(tiny_data: Path, tmp_path: Path,
                                                                         tiny_config, where: str) -> None:
    """Ctrl-C in epoch 2's evaluation (or in a hook after its checkpoints): last.pt still says 1 epoch done,
    and --resume re-evaluates epoch 2, ending with the weights, metrics and best.pt of a straight run."""
    from seglab.errors import SeglabError

    common = dict(epochs=3, num_samples=0)
    train(tiny_config(tiny_data, tmp_path / "ref", **common))
    trainer = Trainer(tiny_config(tiny_data, tmp_path / "cut", **common))
    if where == "evaluation":
        _interrupt_evaluation_at(trainer, 2)
    else:
        trainer.hooks.append(_InterruptAt(2))  # last: after eval, best tracking, last.pt/best.pt and metrics.csv
    with pytest.raises(SeglabError, match="interrupted; progress saved to .*last.pt"):
        trainer.fit()
    ck = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert ck["epoch"] == 1 and ck["trainer"]["epoch"] == 1 and ck["step"] == 8  # epoch 2 trained, not closed
    assert [row["epoch"] for row in ck["trainer"]["history"]] == [1]

    summary = train(tiny_config(tiny_data, tmp_path / "cut", resume=True, **common))
    assert summary["epochs"] == 3 and summary["steps"] == 12
    ref, cut = _rows(tmp_path / "ref"), _rows(tmp_path / "cut")
    assert [r["epoch"] for r in cut] == ["1", "2", "3"]
    assert cut[0] == ref[0] and cut[2] == ref[2]
    assert cut[1] == ref[1]  # epoch 2's evaluation is redone, its training numbers come from last.pt
    for name in ("last.pt", "best.pt"):
        a, b = read_checkpoint(tmp_path / "ref" / name), read_checkpoint(tmp_path / "cut" / name)
        assert (a["epoch"], a["step"], a["metrics"]["mean_iou"]) == (b["epoch"], b["step"], b["metrics"]["mean_iou"])
        assert a["trainer"]["best"] == b["trainer"]["best"] and a["trainer"]["bad_epochs"] == b["trainer"]["bad_epochs"]
        for k, v in a["model_state"].items():
            assert torch.equal(v, b["model_state"][k]), (name, k)


def test_resume_after_ctrl_c_keeps_the_interrupted_epochs_training_numbers(tiny_data: Path, tmp_path: Path,
                                                                           tiny_config) -> None:
    from seglab.errors import SeglabError

    trainer = Trainer(tiny_config(tiny_data, tmp_path / "cut", epochs=2, num_samples=0))
    trainer.hooks.append(_InterruptAt(2))  # after CSVLog: metrics.csv already holds epoch 2's full row
    with pytest.raises(SeglabError, match="interrupted"):
        trainer.fit()
    before = _rows(tmp_path / "cut")
    assert [r["epoch"] for r in before] == ["1", "2"] and before[1]["train_loss"] != "nan"
    train(tiny_config(tiny_data, tmp_path / "cut", epochs=2, num_samples=0, resume=True))
    assert _rows(tmp_path / "cut") == before
