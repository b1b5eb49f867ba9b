"""latentatlas.optim: the fused Adam every training loop uses, against torch's default implementation."""

from __future__ import annotations

import pytest
import torch

from latentatlas.optim import adam, load_adam_state

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _params(device: str, seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*shape, generator=g, dtype=torch.float64).to(device))
            for shape in ((7, 5), (5,), (3, 2, 2))]


def _steps(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], first: int, last: int) -> None:
    """Steps ``first``..``last - 1`` on the quadratic loss sum((p - step) ** 2) / 2."""
    for step in range(first, last):
        opt.zero_grad(set_to_none=True)
        sum(((p - step) ** 2).sum() / 2 for p in params).backward()
        opt.step()


@pytest.mark.parametrize("device", DEVICES)
def test_the_fused_adam_takes_the_steps_of_torchs_default_adam(device):
    ours, reference = _params(device), _params(device)
    opt = adam(ours, lr=0.05, betas=(0.5, 0.9), weight_decay=1e-3)
    assert opt.param_groups[0]["fused"] is True
    _steps(opt, ours, 0, 30)
    _steps(torch.optim.Adam(reference, lr=0.05, betas=(0.5, 0.9), weight_decay=1e-3), reference, 0, 30)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_a_state_saved_by_the_default_adam_resumes_in_the_fused_one(device):
    """A checkpoint from before the fused default: its step counts are cast as the fused code needs them
    (on the parameters' device), and the run goes on as an uninterrupted one."""
    old, whole = _params(device), _params(device)
    before = torch.optim.Adam(old, lr=0.05)
    _steps(before, old, 0, 10)
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in old]
    opt = adam(resumed, lr=0.05)
    load_adam_state(opt, before.state_dict())
    assert opt.param_groups[0]["fused"] is True
    steps = [opt.state[p]["step"] for p in resumed]
    assert all(s.device == p.device and s.dtype == torch.float32 for p, s in zip(resumed, steps))
    _steps(opt, resumed, 10, 20)
    _steps(torch.optim.Adam(whole, lr=0.05), whole, 0, 20)
    for a, b in zip(resumed, whole):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
