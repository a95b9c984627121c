"""The runtime needs no torch: ``seglab predict model.onnx`` runs in a process where ``import torch`` fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")

# A meta-path finder that refuses torch (and the libraries built on it) before any seglab import.
BLOCKER = textwrap.dedent("""
    import sys
    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "timm", "torchmetrics"):
                raise ImportError(f"{name} is blocked in this test")
            return None
    sys.meta_path.insert(0, NoTorch())
""")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_blocker_blocks_torch() -> None:
    done = _run("import torch")
    assert done.returncode != 0 and "blocked in this test" in done.stderr


def test_predict_bundle_without_torch(bundle_path: Path, semantic_run: dict, tmp_path: Path) -> None:
    out = tmp_path / "preds"
    done = _run(f"""
        from seglab.cli import main
        code = main(["predict", {str(bundle_path)!r}, {str(semantic_run["data"] / "images" / "val")!r},
                     "--out", {str(out)!r}, "--tile", "16", "--tta", "flip"])
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if "torch" in m)
        sys.exit(code)
    """)
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["s0.png", "s1.png", "s2.png", "s3.png"]
    labels = np.asarray(Image.open(out / "s0.png"))
    assert labels.shape == (32, 40) and set(np.unique(labels)) <= {0, 1, 2}


def test_runtime_package_imports_without_torch() -> None:
    done = _run("""
        import seglab, seglab.runtime, seglab.runtime.files, seglab.runtime.semantic, seglab.runtime.bundle
        import seglab.runtime.instance, seglab.runtime.instance_files
        assert "torch" not in sys.modules
    """)
    assert done.returncode == 0, done.stderr


def test_predict_instance_bundle_without_torch(instance_bundle: Path, instance_run: dict, tmp_path: Path) -> None:
    out = tmp_path / "detections"
    done = _run(f"""
        from seglab.cli import main
        code = main(["predict", {str(instance_bundle)!r}, {str(instance_run["data"] / "images" / "val")!r},
                     "--out", {str(out)!r}, "--score-threshold", "0.0", "--save", "index,color"])
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if "torch" in m)
        sys.exit(code)
    """)
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("*_color.png"))) == 5 and (out / "predictions.json").is_file()
    ids = np.asarray(Image.open(sorted(out.glob("*.png"))[0]))
    assert ids.shape == (64, 64) and ids.max() > 0
