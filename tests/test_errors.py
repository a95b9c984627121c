"""A SeglabError raised in a DataLoader worker reaches the user as its own message, not a traceback."""

from __future__ import annotations

import pytest
import torch

from seglab.errors import DataError, SeglabError


class _Broken(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> int:
        raise DataError("images/train/a.png: cannot read image (truncated).\nRe-export it.")


@pytest.mark.parametrize("workers", [0, 2])
def test_worker_errors_keep_the_users_message(workers: int) -> None:
    with pytest.raises(DataError) as info:
        list(torch.utils.data.DataLoader(_Broken(), num_workers=workers))
    assert str(info.value) == "images/train/a.png: cannot read image (truncated).\nRe-export it."


def test_ordinary_messages_are_untouched() -> None:
    text = "Caught you. Nothing about workers here"
    assert str(SeglabError(text)) == text
