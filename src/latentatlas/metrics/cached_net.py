"""Feature networks trained once and cached: the state dict ``<cache>/<folder>/<name>-<key>.pt`` beside
``<name>-<key>.json``, its protocol (constructor arguments, training settings, held-out scores).

The key is a hash of everything that determines the weights (data fingerprint, targets, seed, epochs,
version).  An entry shipped with the package under the same name (:mod:`latentatlas.metrics.shipped`) is
used before the cache: the same weights on every machine.  Loading is ``weights_only``
(:func:`latentatlas.fileio.torch_load`, content hash verified, and the ``weights_hash`` its protocol
records); a damaged cache entry is trained again, a damaged shipped one is an error.  Both nets hold out
rows with :func:`heldout_split`.  Used by the ``classifier`` and ``celeba-attributes`` extractors.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from latentatlas.fileio import json_key, read_json, torch_load, torch_save, write_json
from latentatlas.metrics.features import module_hash
from latentatlas.metrics.shipped import shipped_path

log = logging.getLogger(__name__)


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Kaiming-uniform weights drawn from ``generator``, zero biases (no global RNG)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu", generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def heldout_split(n: int, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out rows, training rows): a random ``fraction`` of ``range(n)`` drawn with ``generator``."""
    order = torch.randperm(n, generator=generator)
    n_held = int(round(fraction * n))
    return order[:n_held], order[n_held:]


def cache_path(cache_dir: str | Path, folder: str, name: str, key_fields: dict) -> Path:
    """``<cache_dir>/<folder>/<name>-<key>.pt``, the key the first 16 hex digits of the sha256 of
    ``key_fields`` as JSON (in the given order)."""
    return Path(cache_dir) / folder / f"{name}-{json_key(key_fields, 16, sort_keys=False)}.pt"


def load_cached_net(path: str | Path, build: Callable[[dict], nn.Module], what: str, *,
                    device: str = "cpu", source: str = "file") -> nn.Module:
    """The network ``build(protocol)`` with the state dict at ``path`` (``weights_only``) and its protocol
    (the ``.json`` beside it) as ``.protocol``; ``.weights_hash`` the hash of the loaded state,
    ``.weights_source`` where it came from (``shipped``, ``cache`` or a user's ``file``)."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"weights: expected a {what} state dict {path} and its protocol {meta_path}")
    meta = read_json(meta_path, f"{what} protocol")
    model = build(meta)
    model.load_state_dict(torch_load(path, what))
    model.weights_hash = module_hash(model)
    if meta.get("weights_hash", model.weights_hash) != model.weights_hash:
        raise ValueError(f"{what} {str(path)!r}: its weights hash {model.weights_hash} differs from the "
                         f"{meta['weights_hash']} its protocol {str(meta_path)!r} records")
    model.weights_source = source
    model.protocol = meta
    return model.to(device).eval()


def load_or_train_net(path: Path, *, what: str, build: Callable[[dict], nn.Module],
                      train: Callable[[], tuple[nn.Module, dict]], device: str = "cpu",
                      use_shipped: bool = True) -> nn.Module:
    """The network shipped under ``path``'s name (``use_shipped``), else the cached one at ``path``, else
    (absent or damaged) ``train()``'s network, saved there with its protocol and weights hash first and then
    loaded back like any cached one."""
    shipped = shipped_path(path)
    if use_shipped and shipped.is_file():
        log.info("%s shipped with latentatlas: %s", what, shipped)
        return load_cached_net(shipped, build, what, device=device, source="shipped")
    if path.is_file() and path.with_suffix(".json").is_file():
        log.info("%s from cache %s", what, path)
        try:
            return load_cached_net(path, build, what, device=device, source="cache")
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:   # a damaged cache entry: train again
            log.warning("cached %s %s cannot be used (%s); training it again", what, path, exc)
    model, protocol = train()
    model.to("cpu")
    torch_save(model.state_dict(), path)
    write_json(path.with_suffix(".json"), {**protocol, "weights_hash": module_hash(model)})
    log.info("%s cached at %s", what, path)
    return load_cached_net(path, build, what, device=device, source="cache")
