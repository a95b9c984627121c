"""CLI progress without a terminal (nohup, SLURM, ``| tee``): a few plain, unwrapped lines; nothing for quick jobs."""

from __future__ import annotations

import re

from seglab.cli.progress import progress_bar, status

LINE = re.compile(r"^predict: (\d+)/470 \((\d+)%\) \d+:\d\d elapsed$")


def test_plain_lines_every_tenth_then_a_closing_line(capsys) -> None:
    with progress_bar("predict", every_s=0.0) as callback:
        for done in range(471):
            callback(done, 470)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("predict: done 470/470 (100%)")
    counts = [int(m.group(1)) for m in map(LINE.match, lines[:-1]) if m]
    assert len(counts) == len(lines) - 1 == 10  # every 10 %, never more
    assert counts == [47 * k for k in range(1, 11)]


def test_a_quick_job_prints_nothing_and_disabled_prints_nothing(capsys) -> None:
    with progress_bar("check") as callback:  # 30 s have not passed: no line, no closing line
        for done in range(100):
            callback(done, 99)
    with progress_bar("evaluate val", enabled=False, every_s=0.0) as callback:  # not the main rank
        callback(5, 10)
    assert capsys.readouterr().err == ""


def test_long_labels_are_not_wrapped(capsys) -> None:
    label = "stats " + "very/long/dataset/path/" * 10
    with progress_bar(label, every_s=0.0, every_frac=0.5) as callback:
        callback(1, 2)
    (line,) = capsys.readouterr().err.splitlines()[:1]
    assert line.startswith(label + ": 1/2 (50%)") and len(line) > 200


def test_status_says_when_a_job_starts_and_ends(capsys) -> None:
    with status("exporting unet to onnx"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "exporting unet to onnx ..."
    assert re.fullmatch(r"exporting unet to onnx: done in \d+\.\d s", lines[1])


def test_on_a_terminal_a_bar_and_a_spinner(monkeypatch) -> None:
    import io

    from rich.console import Console

    import seglab.cli.progress as P

    screen = io.StringIO()
    monkeypatch.setattr(P, "err_console", Console(file=screen, force_terminal=True, width=100))
    with progress_bar("predict", every_s=0.0) as callback:
        callback(3, 10)
    with status("exporting"):
        pass
    assert "predict" in screen.getvalue() and "done" not in screen.getvalue()  # no plain lines on a terminal
