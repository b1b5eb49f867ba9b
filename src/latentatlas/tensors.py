"""Array helpers shared by the metrics, the latent samplers and the training loops: one coercion of (N, D)
arrays to tensors, one batched evaluation of a network over the rows of CPU tensors, blocked squared Euclidean
distances (|a|^2 + |b|^2 - 2 a.b) that never hold more than a chunk, sums of rows by group that come out the
same on every run, on a GPU too, and one read of many logged scalars to the host."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from latentatlas.rng import to_device

DEFAULT_CHUNK_BYTES = 256 * 2**20


def as_features(x: Any, param: str, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu", *,
                min_rows: int = 1) -> torch.Tensor:
    """Features (N, D) from a tensor or array as ``dtype`` on ``device``; ``param`` names it in errors."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2 or t.shape[0] < min_rows:
        raise ValueError(f"{param}: expected a 2-D (N, D) feature array with N >= {min_rows}, "
                         f"got shape {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        t = t.to(torch.float64)
    return t.detach().to(device=device, dtype=dtype)


def map_rows(fn: Callable[..., Any], *inputs: torch.Tensor | None, batch_size: int,
             device: torch.device | str) -> Any:
    """``fn`` over batches of the rows of ``inputs`` (each (N, ...); None is passed on as None) on ``device`` ->
    what ``fn`` returns (a tensor (B, ...), or a tuple of tensors or None) with the rows of every batch, on the
    CPU.  ``fn`` gets the batches as they are stored (uint8 images stay uint8, a quarter of float32's bytes).

    On a GPU the batches go to the device through pinned memory and the outputs come back into pinned memory,
    neither waiting for the device, and the host waits once, at the end: a loop of ``.to(device)`` and
    ``.cpu()`` waits twice a batch, and the device idles while the host prepares the next.  With N = 0, ``fn``
    runs once on empty batches, which gives the outputs' shapes."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    rows = {t.shape[0] for t in inputs if t is not None}
    if len(rows) != 1:
        raise ValueError(f"inputs: expected one number of rows in every input, got {sorted(rows)}")
    n = rows.pop()
    outputs: tuple[torch.Tensor | None, ...] = ()
    for start in range(0, max(n, 1), batch_size):
        result = fn(*(None if t is None else to_device(t[start:start + batch_size], device) for t in inputs))
        parts = result if isinstance(result, tuple) else (result,)
        if start == 0:
            outputs = tuple(None if p is None else torch.empty((n, *p.shape[1:]), dtype=p.dtype, pin_memory=cuda)
                            for p in parts)
        for out, part in zip(outputs, parts):
            if out is not None:
                out[start:start + part.shape[0]].copy_(part, non_blocking=cuda)
    if cuda:
        torch.cuda.current_stream(device).synchronize()
    return outputs if isinstance(result, tuple) else outputs[0]


def host_values(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with each tensor value (a scalar) replaced by its number, all read to the host in one copy (one
    wait on a GPU, not one a value); other values are kept as they are."""
    tensors = [v.float() for row in rows for v in row.values() if isinstance(v, torch.Tensor)]
    numbers = iter(torch.stack(tensors).tolist() if tensors else ())
    return [{k: next(numbers) if isinstance(v, torch.Tensor) else v for k, v in row.items()} for row in rows]


def chunk_rows(n_cols: int, max_chunk_bytes: int, itemsize: int) -> int:
    return max(1, int(max_chunk_bytes // (max(1, n_cols) * itemsize * 2)))  # 2: block + temporaries


def sq_dists(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Squared distances (A, B), clipped at 0."""
    d = torch.addmm(b_sq.unsqueeze(0), a, b.T, beta=1.0, alpha=-2.0)
    d.add_(a_sq.unsqueeze(1))
    return d.clamp_min_(0)


def group_sums(labels: torch.Tensor, values: torch.Tensor, groups: int, *,
               max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Sums (groups, P) of the rows of ``values`` (N, P) by ``labels`` (N,) long in [0, groups).

    On the CPU ``index_add_``.  On a GPU ``index_add_`` adds floats with atomics in an order that changes
    from run to run (so would a k-means start, and the mixture fitted from it); a one-hot matrix product
    per block of rows adds them in a fixed order instead."""
    if values.device.type == "cpu":
        return values.new_zeros(groups, values.shape[1]).index_add_(0, labels, values)
    return onehot_sums(labels, values, groups, max_chunk_bytes=max_chunk_bytes)


def onehot_sums(labels: torch.Tensor, values: torch.Tensor, groups: int, *,
                max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """:func:`group_sums` as one-hot (rows, groups)^T @ values (rows, P) products, block by block."""
    out = values.new_zeros(groups, values.shape[1])
    ids = torch.arange(groups, device=values.device)
    for lab, block in zip(*(t.split(chunk_rows(groups, max_chunk_bytes, values.element_size()))
                            for t in (labels, values))):
        out += (lab[:, None] == ids).to(values.dtype).T @ block
    return out
