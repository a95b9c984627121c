"""Input checks shared by SegMetrics and the boundary metrics."""

from __future__ import annotations

import pytest
import torch

from seglab.errors import DataError
from seglab.metrics.inputs import class_indices, target_error


def test_scores_become_indices_and_2d_inputs_get_a_batch_dim() -> None:
    scores = torch.tensor([[[0.1, 0.9]], [[0.8, 0.2]]])  # (C=2, H=1, W=2)
    pred, target = class_indices(scores[None], torch.tensor([[[1, 0]]]), 2)
    assert pred.tolist() == [[[1, 0]]] and target.shape == (1, 1, 2)
    pred, target = class_indices(torch.tensor([[0, 1]]), torch.tensor([[1, 1]]), 2)
    assert pred.shape == target.shape == (1, 1, 2)


@pytest.mark.parametrize(("pred", "target", "words"), [
    (torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2), "target must be (N, H, W) integer"),
    (torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), "do not fit target"),
    (torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long), "differ in shape"),
    (torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), "pass integer class indices"),
    (torch.full((1, 2, 2), 5), torch.zeros(1, 2, 2, dtype=torch.long), "class indices 5 outside [0, 2)"),
])
def test_bad_inputs(pred: torch.Tensor, target: torch.Tensor, words: str) -> None:
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        class_indices(pred, target, 2)


def test_target_error_lists_the_bad_values_not_the_ignored_ones() -> None:
    err = target_error(torch.tensor([[0, 7, 255, -1, 7]]), 2, 255)
    assert isinstance(err, DataError) and "values -1, 7 outside [0, 2)" in str(err)
