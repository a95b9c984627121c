"""torchrun with 2 gloo processes on CPU reaches the weights of 1 process with the same global batch."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seglab.checkpoint import read_checkpoint
from seglab.engine.trainer import train

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_gloo_ranks_match_one_process(tiny_data: Path, tmp_path: Path, tiny_config) -> None:
    # No BatchNorm (per-rank batch statistics would differ by design), SGD, no flips: the only
    # difference between the runs is how the global batch of 4 is split over processes.
    common = dict(epochs=2, optimizer="sgd", schedule="cosine", lr=0.05, num_samples=0)
    single = tiny_config(tiny_data, tmp_path / "single", batch_size=4, **common)
    single.model.options["norm"] = "none"
    train(single)

    ddp = tiny_config(tiny_data, tmp_path / "ddp", batch_size=2, **common)
    ddp.model.options["norm"] = "none"
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(ddp.to_yaml())
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "seglab", "train",
         "--config", str(cfg_path)], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    a, b = read_checkpoint(tmp_path / "single" / "last.pt"), read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert a["step"] == b["step"] == 8
    for k, v in a["model_state"].items():
        # gradients are averaged in a different order (all_reduce): equal up to float rounding
        torch.testing.assert_close(b["model_state"][k], v, rtol=1e-4, atol=1e-5)
    rows_a = list(csv.DictReader((tmp_path / "single" / "metrics.csv").open()))
    rows_b = list(csv.DictReader((tmp_path / "ddp" / "metrics.csv").open()))
    # validation is sharded over the ranks and the confusion matrices summed: same mIoU
    assert float(rows_b[-1]["mean_iou"]) == pytest.approx(float(rows_a[-1]["mean_iou"]), abs=1e-4)
    assert sum(1 for _ in (tmp_path / "ddp").glob("*.pt")) == 2
