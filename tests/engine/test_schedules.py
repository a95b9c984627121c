"""LR schedules against their textbook formulas."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.engine.schedules import LRSchedule


def _schedule(schedule: str, steps: int, spe: int, **kw) -> tuple[torch.optim.Optimizer, LRSchedule]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    return opt, LRSchedule(opt, schedule, steps, spe, **kw)


def _run(opt: torch.optim.Optimizer, s: LRSchedule, steps: int) -> list[float]:
    """The LR of each of the next ``steps`` optimizer steps."""
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step_iter()
    return out


def _lrs(schedule: str, steps: int, spe: int, **kw) -> list[float]:
    return _run(*_schedule(schedule, steps, spe, **kw), steps)


def test_warmup_then_cosine() -> None:
    lrs = _lrs("cosine", 100, 10, warmup_epochs=1)
    assert lrs[:3] == pytest.approx([0.01, 0.02, 0.03])
    assert lrs[9] == pytest.approx(0.1)
    s = 55
    assert lrs[s] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * (s - 10) / 90)))


def test_poly_matches_study_guide_formula() -> None:
    lrs = _lrs("poly", 50, 10, poly_power=0.9)
    for it in (0, 17, 49):
        assert lrs[it] == pytest.approx(0.1 * (1 - it / 50) ** 0.9)


def test_step_milestones_in_epochs() -> None:
    lrs = _lrs("step", 40, 10, milestones=[1, 3], gamma=0.1)
    assert lrs[9] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.01) and lrs[35] == pytest.approx(0.001)


def test_plateau_halves_after_patience() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    s = LRSchedule(opt, "plateau", 100, 10, plateau_patience=1, plateau_factor=0.5)
    for metric in (0.5, 0.6, 0.6, 0.6):
        s.step_eval(metric)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    s.step_iter()  # per-step updates must not undo the plateau reduction
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_retotal_stretches_the_curve_from_the_current_step() -> None:
    # --time re-fits a run: the schedule built for 100 steps continues as if it had been built for 200
    opt, s = _schedule("cosine", 100, 10, warmup_epochs=1)
    _run(opt, s, 30)
    s.retotal(200)
    lrs = _run(opt, s, 170)
    cosine = [0.1 * 0.5 * (1 + math.cos(math.pi * (k - 10) / 190)) for k in range(30, 200)]
    assert lrs == pytest.approx(cosine)  # the textbook cosine over 200 steps, from step 30 on
    assert lrs[-1] < 1e-5


def test_retotal_leaves_plateau_reductions_alone() -> None:
    opt, s = _schedule("plateau", 100, 10, warmup_epochs=1, plateau_patience=0)
    _run(opt, s, 20)
    s.step_eval(0.5)
    s.step_eval(0.4)  # worse, patience 0: halved
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    s.retotal(300)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_retotal_in_the_warm_up_keeps_the_warm_up() -> None:
    opt, s = _schedule("cosine", 100, 10, warmup_epochs=1)
    _run(opt, s, 4)
    s.retotal(300)
    lrs = _run(opt, s, 8)
    # steps 4-9 still warm up linearly; from step 10 the cosine runs over the new 290 post-warm-up steps
    assert lrs == pytest.approx([0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.1, 0.1 * 0.5 * (1 + math.cos(math.pi / 290))])
