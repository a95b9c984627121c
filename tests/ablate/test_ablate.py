"""`seglab ablate` end to end on tiny data: every run trained once, resumable, one report with statistics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seglab.ablate import parse_vary, variants
from seglab.ablate.grid import assign
from seglab.cli import main
from seglab.config import RunConfig, config_from_dict
from seglab.errors import ConfigError

TINY = ["--set", "data.crop_size=32", "--set", "data.workers=0", "--set", "model.name=unet",
        "--set", "model.options={base_channels: 4, depth: 2}", "--set", "train.epochs=1",
        "--set", "train.batch_size=8", "--set", "train.warmup_epochs=0"]


def test_grid_and_list_variants() -> None:
    a, b = parse_vary("model.options.skip=concat,add,none"), parse_vary("train.loss=ce,dice")
    assert a.values == ("concat", "add", "none") and parse_vary("train.lr=0.1,0.01").values == (0.1, 0.01)
    assert len(variants([a, b], "grid")) == 6 and variants([a, b], "grid")[0] == {a.key: "concat", b.key: "ce"}
    assert len(variants([a, b], "list")) == 1 + 2 + 1
    cfg = assign(config_from_dict({"model": {"name": "unet", "options": {"depth": 2}}}),
                 {a.key: "add", b.key: "dice"})
    assert cfg.model.options == {"depth": 2, "skip": "add"} and cfg.train.loss == "dice"
    for bad in ("lr", "train.lr=0.1", "lr=1,2", "train.lr=1,1"):
        with pytest.raises(ConfigError):
            parse_vary(bad)
    with pytest.raises(ConfigError, match="train.lr"):
        assign(RunConfig(), {"train.lr": -1})


def test_ablation_runs_once_resumes_and_reports(tiny_data: Path, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "abl"
    argv = ["ablate", "--data", str(tiny_data), "--vary", "model.options.skip=concat,add", "--seeds", "2",
            "--out", str(out), *TINY]
    assert main(argv) == 0
    runs = sorted(p.parent for p in out.rglob("result.json"))
    assert [p.relative_to(out).as_posix() for p in runs] == ["skip=add/seed0", "skip=add/seed1",
                                                             "skip=concat/seed0", "skip=concat/seed1"]
    report = (out / "report.md").read_text()
    assert "| skip=concat |" in report and "| skip=add | mean_iou |" in report
    assert "95 %" in report and ("no significant difference at 2 seeds" in report or "than the reference" in report)
    assert "boundary_iou" in report and (out / "curves.png").stat().st_size > 0
    assert (out / "predictions.png").stat().st_size > 0
    result = json.loads((runs[0] / "result.json").read_text())
    assert 0.0 <= result["metrics"]["mean_iou"] <= 1.0 and "boundary_iou" in result["metrics"]

    # a killed ablation: one run lost its result, another never saved a checkpoint; only those two train again
    (runs[0] / "result.json").unlink()
    shutil.rmtree(runs[1])
    import seglab.engine.trainer as T

    trained = []
    real = T.train
    monkeypatch.setattr(T, "train", lambda cfg, **kw: trained.append((cfg.train.out, cfg.train.resume)) or real(cfg))
    capsys.readouterr()
    assert main(argv) == 0
    assert sorted(trained) == [(str(runs[0]), True), (str(runs[1]), False)]

    # another ablation into the same folder is refused
    assert main([*argv[:4], "model.options.skip=concat,none", *argv[5:]]) == 2
    assert "holds another ablation" in capsys.readouterr().err


def test_each_variant_trains_its_own_value_even_a_default(tiny_data: Path) -> None:
    """Issue 29 item 2: with no model in the base, the plan replaced train.loss=ce (the default) by ce+dice, so
    both variants trained ce+dice."""
    from seglab.ablate.runner import resolve_variants

    cfg = config_from_dict({"data": {"root": str(tiny_data)}, "train": {"device": "cpu"}})
    plan = variants([parse_vary("train.loss=ce,ce+dice"), parse_vary("train.lr=0.001,0.01")], "grid")
    configs = resolve_variants(cfg, plan, given={"train.precision"}, log=lambda m: None)
    assert [(c.train.loss, c.train.lr) for c in configs] == [("ce", 0.001), ("ce", 0.01), ("ce+dice", 0.001),
                                                            ("ce+dice", 0.01)]
    assert all(c.model.name == "unet" and c.data.crop_size == 32 for c in configs)  # the plan fills the rest
    assert all(c.train.precision == "fp32" for c in configs)  # --set / --base keys win too


def test_variants_that_train_the_same_config_are_refused(tiny_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "abl"
    assert main(["ablate", "--data", str(tiny_data), "--vary", "train.lr=1,1.0", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert "lr=1 and lr=1.0 would train the same config" in err and "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*.pt"))


@pytest.mark.parametrize("vary,words", [("train.loss=ce,dcie", "variant loss=dcie: loss spec 'dcie'"),
                                        ("model.options.skip=concat,sum", "variant skip=sum"),
                                        ("train.monitor=mean_iou,mask_AP", "variant monitor=mask_AP")])
def test_every_variant_is_checked_before_the_first_run(tiny_data: Path, tmp_path: Path, capsys, vary: str,
                                                       words: str) -> None:
    """Issue 26 reliability 2: a bad varied value was found only at its turn, after the earlier variants had
    trained their whole budget."""
    out = tmp_path / "abl"
    assert main(["ablate", "--data", str(tiny_data), "--vary", vary, "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert words in err and "Nothing was trained" in err and "Traceback" not in err
    assert not (out / "ablation.yaml").exists()  # nothing recorded: the corrected command may use this --out
