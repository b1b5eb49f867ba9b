"""The shared array helpers: sums of rows by group (index_add_ on the CPU, one-hot products on a GPU), one
read of logged scalars to the host, and batched evaluation over the rows of CPU tensors."""

from __future__ import annotations

import pytest
import torch

from latentatlas.tensors import group_sums, host_values, map_rows, onehot_sums

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _rows(n: int = 1000, p: int = 5, groups: int = 7):
    g = torch.Generator().manual_seed(0)
    return torch.randint(groups, (n,), generator=g), torch.randn(n, p, generator=g, dtype=torch.float64), groups


def test_group_sums_equal_a_loop_over_the_groups():
    labels, values, groups = _rows()
    expected = torch.stack([values[labels == j].sum(0) for j in range(groups)])
    torch.testing.assert_close(group_sums(labels, values, groups), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk_bytes", [64, 2**20])    # 64 bytes: one row per block, every block boundary
def test_onehot_sums_equal_index_add_and_keep_empty_groups_at_zero(chunk_bytes):
    labels, values, groups = _rows()
    labels[labels == 3] = 4                                # group 3 holds no row
    reference = values.new_zeros(groups, values.shape[1]).index_add_(0, labels, values)
    got = onehot_sums(labels, values, groups, max_chunk_bytes=chunk_bytes)
    torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-12)
    assert torch.equal(got[3], torch.zeros(values.shape[1], dtype=values.dtype))


@pytest.mark.parametrize("device", DEVICES)
def test_group_sums_are_the_same_on_every_call(device):
    labels, values, groups = _rows(200_000, 16, 100)
    labels, values = labels.to(device), values.float().to(device)
    first = group_sums(labels, values, groups)
    assert all(torch.equal(group_sums(labels, values, groups), first) for _ in range(3))


def test_host_values_reads_every_scalar_tensor_and_keeps_the_rest():
    rows = [{"iter": 1, "loss": torch.tensor(0.25), "name": "a"}, {}, {"iter": 2, "loss": torch.tensor(-3.5),
                                                                      "kl": torch.tensor(2, dtype=torch.int64)}]
    assert host_values(rows) == [{"iter": 1, "loss": 0.25, "name": "a"}, {}, {"iter": 2, "loss": -3.5, "kl": 2.0}]
    assert host_values([]) == [] and host_values([{"step": 3}]) == [{"step": 3}]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch_size", [1, 7, 50, 64])   # one row a batch, a ragged last batch, one batch
def test_map_rows_gives_what_one_call_on_all_rows_gives(device, batch_size):
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randint(256, (50, 1, 3, 3), generator=g, dtype=torch.uint8), torch.arange(50) % 4
    weight = torch.randn(9, 2, generator=g, dtype=torch.float64).to(device)

    def fn(x, y):
        assert x.device.type == device and x.dtype == torch.uint8 and x.shape[0] <= batch_size
        z = x.flatten(1).double() @ weight + y[:, None]
        return z, z.argmax(1), None
    z, top, absent = map_rows(fn, images, labels, batch_size=batch_size, device=device)
    expected = images.flatten(1).double() @ weight.cpu() + labels[:, None]
    torch.testing.assert_close(z, expected, rtol=1e-12, atol=1e-12)
    assert z.device.type == "cpu" and torch.equal(top, expected.argmax(1)) and absent is None


def test_map_rows_passes_an_absent_input_on_and_returns_a_lone_tensor_as_it_is():
    out = map_rows(lambda x, y: x * 2 if y is None else x, torch.arange(10.0), None, batch_size=3, device="cpu")
    assert torch.equal(out, torch.arange(10.0) * 2)


def test_map_rows_refuses_inputs_of_different_lengths():
    with pytest.raises(ValueError, match=r"inputs: expected one number of rows in every input, got \[3, 4\]"):
        map_rows(lambda x, y: x, torch.zeros(4), torch.zeros(3), batch_size=2, device="cpu")


def test_map_rows_on_no_rows_gives_empty_outputs_of_the_functions_shapes():
    z, logvar = map_rows(lambda x: (x.flatten(1)[:, :4].float(), None), torch.zeros(0, 1, 3, 3, dtype=torch.uint8),
                         batch_size=8, device="cpu")
    assert z.shape == (0, 4) and z.dtype == torch.float32 and logvar is None
