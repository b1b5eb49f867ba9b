"""Adam as latentatlas trains with it: torch's fused implementation where the parameters' device has one (one
kernel a step on a GPU, and 3-7x faster a step than torch's default on the CPU: ``bench/adam_step.py``), the
default implementation elsewhere.  The same arithmetic; the results differ from the default's in the last bits.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

FUSED_DEVICES = ("cpu", "cuda")
IMPLEMENTATION = ("fused", "foreach", "capturable")   # settings that choose the code, not the arithmetic


def adam(params: Iterable[torch.nn.Parameter], **settings: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(params, **settings)``, fused when every parameter is a floating tensor on a device of
    ``FUSED_DEVICES``."""
    params = list(params)
    fused = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)
    return torch.optim.Adam(params, fused=fused or None, **settings)


def load_adam_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``opt.load_state_dict(state)`` keeping ``opt``'s implementation: a state saved by another one (before
    the fused default, or on another device) has its step counts cast as ``opt``'s own need them (the fused
    and capturable implementations keep them on the parameters' device)."""
    groups = [{**saved, **{k: current[k] for k in IMPLEMENTATION if k in current}}
              for saved, current in zip(state["param_groups"], opt.param_groups)]
    opt.load_state_dict({**state, "param_groups": groups})
