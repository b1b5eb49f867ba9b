"""Finding, on the CPU, the operations that would wait for a GPU: on a GPU the host queues kernels ahead of the
device, and an operation that needs a value on the host (``item``, ``bool`` of a tensor), sizes its output by the
data (``nonzero``, boolean-mask indexing, ``bincount``) or copies Python data to the device
(``torch.tensor(x, device=...)``) stops the host until the queue has run.  (A copy of CPU tensors to the device
from ordinary memory waits too; on the CPU it is no operation, so latentatlas makes such copies through
``rng.to_device``.)"""

from __future__ import annotations

import traceback
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import latentatlas

PACKAGE = str(Path(latentatlas.__file__).parent) + "/"

WAITING = {"_local_scalar_dense", "nonzero", "masked_select", "_unique", "_unique2", "unique_dim",
           "unique_consecutive", "bincount", "equal", "is_nonzero", "lift_fresh", "histc"}


class WaitsOnCuda(TorchDispatchMode):
    """Records the ATen operations that, on a CUDA tensor, wait for the device, each with the source line of
    latentatlas that called it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        masks = name in ("index", "index_put_", "_index_put_impl_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ()) if i is not None)
        counts = name == "repeat_interleave" and isinstance(args[0], torch.Tensor) and \
            kwargs.get("output_size") is None and func is not torch.ops.aten.repeat_interleave.self_int
        if name in WAITING or masks or counts:
            stack = traceback.extract_stack()
            line = _caller(stack)
            origin = next(f.filename for f in reversed(stack[:-1]) if "/torch/_" not in f.filename)
            if not (any(check in line for check in CPU_ONLY_CHECKS) or "/torch/optim/" in origin):
                self.found.append(f"{name} at {line}")
        return func(*args, **kwargs)


# Not waits on CUDA: F.one_hot checks its values on the host on the CPU only (CUDA relies on device asserts);
# torch's optimizers keep their step counts on the host unless capturable (reading one is a CPU read).
CPU_ONLY_CHECKS = ("one_hot(",)


def _caller(stack) -> str:
    """'file:line: code' of the innermost latentatlas frame of ``stack``."""
    for frame in reversed(stack):
        if frame.filename.startswith(PACKAGE):
            return f"{frame.filename[len(PACKAGE):]}:{frame.lineno}: {frame.line.split('#')[0].strip()}"
    return "outside latentatlas"


class CopiesToDevices:
    """Records the ``Tensor.to(device)`` calls latentatlas's own code makes within the block (but
    ``rng.to_device``'s, which copies through pinned memory), each with its source line: on a GPU a copy from
    ordinary memory waits for the device, and on the CPU, where every tensor is already there, no operation
    shows it."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def __enter__(self) -> "CopiesToDevices":
        real, found = torch.Tensor.to, self.found

        def to(tensor, *args, **kwargs):
            device = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
            stack = traceback.extract_stack()[:-1]
            if device is not None and stack[-1].filename.startswith(PACKAGE) and stack[-1].filename != RNG:
                found.append(f".to({device}) at {_caller(stack)}")
            return real(tensor, *args, **kwargs)
        self.real, torch.Tensor.to = real, to
        return self

    def __exit__(self, *exc) -> None:
        torch.Tensor.to = self.real


RNG = PACKAGE + "rng.py"
