"""The CLI skeleton: help, version, usage errors, and user errors without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seglab import __version__
from seglab.cli import main

SEGLAB = Path(sys.executable).parent / "seglab"  # the console script of the environment running the tests


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_help_lists_the_data_group(capsys) -> None:
    rc, out = _run(capsys, "--help")
    assert rc == 0 and "data" in out and "Usage" in out


def test_version(capsys) -> None:
    rc, out = _run(capsys, "--version")
    assert rc == 0 and out.strip() == f"seglab {__version__}"


def test_data_help_lists_check(capsys) -> None:
    rc, out = _run(capsys, "data", "--help")
    assert rc == 0 and "check" in out


def test_unknown_command_is_a_usage_error(capsys) -> None:
    rc, out = _run(capsys, "no-such-command")
    assert rc == 2 and "no-such-command" in out


def _seglab(*args: str) -> subprocess.CompletedProcess[str]:
    if not SEGLAB.exists():
        pytest.skip(f"console script {SEGLAB} not installed (pip install -e .)")
    return subprocess.run([str(SEGLAB), *args], capture_output=True, text=True, timeout=120)


def test_user_error_is_one_line_without_traceback() -> None:
    result = _seglab("data", "check", "/nonexistent")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent" in lines[0] and "not found" in lines[0]


def test_debug_shows_the_traceback() -> None:
    result = _seglab("--debug", "data", "check", "/nonexistent")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "DataError" in result.stderr
