"""Finding, on the CPU, the operations that would wait for a GPU: on a GPU the host queues kernels ahead of the
device, and an operation that needs a value on the host (``item``, ``bool`` of a tensor), sizes its output by the
data (``nonzero``, boolean-mask indexing, ``bincount``) or copies Python data to the device
(``torch.tensor(x, device=...)``) stops the host until the queue has run.  (A copy of CPU tensors to the device
from ordinary memory waits too, and so does ``.cpu()``; on the CPU they are no operation, so latentatlas makes
such copies through ``rng.to_device``, and evaluates batches through ``tensors.map_rows``.)"""

from __future__ import annotations

import traceback
import warnings
from pathlib import Path
from typing import Callable

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


class DeviceCopies:
    """Records the copies between host and device that latentatlas's own code makes within the block with
    ``Tensor.to(device)`` (but ``rng.to_device``'s, which copies through pinned memory) and ``Tensor.cpu()``,
    each with its source line: on a GPU such a copy waits for the device, and on the CPU, where every tensor is
    already there, no operation shows it."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def __enter__(self) -> "DeviceCopies":
        self.real = real_to, real_cpu = torch.Tensor.to, torch.Tensor.cpu
        found = self.found

        def ours(stack) -> bool:
            return stack[-1].filename.startswith(PACKAGE) and stack[-1].filename != RNG

        def to(tensor, *args, **kwargs):
            device = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
            stack = traceback.extract_stack()[:-1]
            if device is not None and ours(stack):
                found.append(f".to({device}) at {_caller(stack)}")
            return real_to(tensor, *args, **kwargs)

        def cpu(tensor, *args, **kwargs):
            stack = traceback.extract_stack()[:-1]
            if ours(stack):
                found.append(f".cpu() at {_caller(stack)}")
            return real_cpu(tensor, *args, **kwargs)
        torch.Tensor.to, torch.Tensor.cpu = to, cpu
        return self

    def __exit__(self, *exc) -> None:
        torch.Tensor.to, torch.Tensor.cpu = self.real


RNG = PACKAGE + "rng.py"


def count_waits(work: Callable[[], object], device: str) -> int:
    """The waits of ``work()``: on the CPU the operations and copies that would wait on CUDA, on CUDA the syncs
    that CUDA's sync detector reports (copies from ordinary memory included, which the CPU cannot see)."""
    if device == "cpu":
        with WaitsOnCuda() as mode, DeviceCopies() as copies:
            work()
        return len(mode.found) + len(copies.found)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            work()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchronizing" in str(w.message) for w in seen)
