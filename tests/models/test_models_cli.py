"""`seglab models`: one row per registered model with the parameter count the summary computes."""

from __future__ import annotations

from seglab.cli import main
from seglab.models import build_model, list_models
from seglab.models.summary import count_parameters


def test_models_table(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for entry in list_models():
        assert entry.name in out
    n = count_parameters("unet", 21)
    assert f"{n / 1e6:.2f} M" in out
    assert "base_channels=64" in out and "upsample=transpose" in out


def test_meta_count_equals_real_count() -> None:
    model = build_model("unet", 21, base_channels=8, encoder="resnet18")
    assert sum(p.numel() for p in model.parameters()) == count_parameters("unet", 21, base_channels=8,
                                                                          encoder="resnet18")
