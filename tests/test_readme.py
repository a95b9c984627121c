"""The README's Python block runs as written (on a small copy of the demo data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from seglab.data.synthetic import make_shapes

    make_shapes(tmp_path / "runs" / "demo" / "data", n_train=16, n_val=4, size=96, seed=0)
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_block(), str(README), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("runs/python")
    assert "torch.Size([96, 96])" in out[1] and "background" in out[1]
    assert 0.0 <= float(out[2]) <= 1.0 and 0.0 <= float(out[3]) <= 1.0
    assert (tmp_path / "runs" / "python" / "best.pt").is_file()
