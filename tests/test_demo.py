"""`seglab demo` end to end (one epoch): a second demo keeps the first run and points at its own."""

from __future__ import annotations

from pathlib import Path

from seglab.cli import main


def test_demo_twice_keeps_both_runs(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 0
    first = (tmp_path / "run" / "best.pt").read_bytes()
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "run" / "best.pt").read_bytes() == first and (tmp_path / "run2" / "best.pt").is_file()
    assert f"Look at: {tmp_path / 'run2'}/report.md" in printed.replace("\n", "")
