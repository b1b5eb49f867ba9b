"""check_finite: finite values pass; the first entry with NaN or infinite values is named with its count,
whatever mixes of devices, dtypes, tensors and arrays a mapping holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentatlas.validate import check_finite


def test_finite_values_and_non_float_entries_pass():
    check_finite("state", {"w": torch.randn(3, 3), "b16": torch.ones(4, dtype=torch.bfloat16),
                           "steps": torch.tensor(7), "a": np.zeros(5), "name": "x"})
    check_finite("one", torch.zeros(2))
    check_finite("empty", {})


@pytest.mark.parametrize("where", ["w", "b16", "a"])
def test_the_first_bad_entry_is_named_with_its_count(where):
    values = {"w": torch.randn(3, 3), "b16": torch.ones(4, dtype=torch.bfloat16), "a": np.zeros(5)}
    flat = values[where].reshape(-1)   # a view of the entry
    flat[:2] = float("nan")
    flat[-1] = float("inf")
    with pytest.raises(ValueError, match=rf"^state: expected finite values, got 3 NaN or infinite value\(s\) "
                                         rf"in '{where}'$"):
        check_finite("state", values)


def test_the_error_follows_the_mapping_order_across_tensors_and_arrays():
    values = {"first": np.array([np.inf]), "second": torch.tensor([float("nan"), 1.0])}
    with pytest.raises(ValueError, match="got 1 NaN or infinite value\\(s\\) in 'first'"):
        check_finite("m", values)
    with pytest.raises(ValueError, match=r"^x: expected finite values, got 1 NaN or infinite value\(s\)$"):
        check_finite("x", torch.tensor([1.0, float("-inf")]))
