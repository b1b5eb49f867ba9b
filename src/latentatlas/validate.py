"""One way to check user input.  Every check raises a ``ValueError`` that names the parameter, says what
was expected and shows what was given, e.g. ``model.latent_dim: expected an int >= 1, got 0``.

Config dataclasses declare their bounds next to each field with :func:`rule` (``metadata=rule(low=1)``)
and are checked as a whole by :func:`check_fields`; other code calls :func:`check_number` and
:func:`check_choice` directly.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def rule(*, low: float | None = None, high: float | None = None, strict: bool = False,
         choices: tuple | None = None, folder_name: bool = False, nonempty: bool = False) -> dict[str, Any]:
    """Field metadata for :func:`check_fields`: numeric bounds (``low`` exclusive when ``strict``), the
    allowed ``choices`` of a string field, or a ``folder_name`` (see :func:`check_folder_name`).  On a
    ``tuple[int, ...]``, ``tuple[float, ...]`` or ``tuple[str, ...]`` field the rule applies to every item,
    and ``nonempty`` refuses an empty list."""
    return {"rule": {"low": low, "high": high, "strict": strict, "choices": choices, "folder_name": folder_name,
                     "nonempty": nonempty}}


def _describe(integer: bool, low: float | None, high: float | None, strict: bool, optional: bool) -> str:
    text = "an int" if integer else "a finite number"
    if low is not None and high is not None:
        text += f" in {'(' if strict else '['}{low}, {high}]"
    elif low is not None:
        text += f" {'>' if strict else '>='} {low}"
    elif high is not None:
        text += f" <= {high}"
    return text + (" or None" if optional else "")


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 integer: bool = False, strict: bool = False, optional: bool = False) -> None:
    """``value`` is a finite number (an int when ``integer``; bools are not numbers) within the bounds."""
    if optional and value is None:
        return
    kinds = (int,) if integer else (int, float)
    ok = not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise ValueError(f"{name}: expected {_describe(integer, low, high, strict, optional)}, got {value!r}")


def check_choice(name: str, value: Any, choices: tuple | list) -> None:
    """``value`` is one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


def check_folder_name(name: str, value: Any) -> None:
    """``value`` names one folder inside another (a run name): one path component of letters, digits,
    '.', '_' and '-', starting with a letter or digit, at most 100 characters."""
    if not isinstance(value, str) or not RUN_NAME.fullmatch(value):
        raise ValueError(f"{name}: expected one folder name (letters, digits, '.', '_', '-'; starting with a "
                         f"letter or digit; at most 100 characters), got {value!r}")


def check_finite(name: str, values: Any) -> None:
    """Every floating tensor or array in ``values`` (one, or a mapping of them) is finite; the error names
    the entry and counts the non-finite values.  The tensors on one device are read together: one
    synchronisation per device, not one per tensor (a model's state dict on a GPU)."""
    import numpy as np
    import torch

    items = list(values.items()) if isinstance(values, dict) else [("", values)]
    on_device: dict[Any, list] = {}
    for key, value in items:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            on_device.setdefault(value.device, []).append((key, value.detach()))
    flagged = set()
    for group in on_device.values():
        finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in group]).tolist()
        flagged.update(key for (key, _), ok in zip(group, finite) if not ok)
    for key, value in items:
        if key in flagged:
            bad = int((~torch.isfinite(value.detach())).sum())
        elif isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            bad = int((~np.isfinite(value)).sum())
        else:
            continue
        if bad:
            where = f" in {key!r}" if key else ""
            raise ValueError(f"{name}: expected finite values, got {bad} NaN or infinite value(s){where}")


def _options(hint: Any) -> tuple:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return (hint,)


def _tuple_items(hint: Any) -> tuple | None:
    """The item types of a ``tuple[X, ...]`` annotation (X may be a union), else None."""
    if typing.get_origin(hint) is not tuple:
        return None
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    return _options(args[0]) if len(args) == 1 else None


def _check_items(name: str, value: Any, types: tuple, spec: dict) -> None:
    """Every item of the list setting ``value`` against ``types`` and the field's rule."""
    if not isinstance(value, tuple):
        raise ValueError(f"{name}: expected a list, got {value!r}")
    if spec.get("nonempty") and not value:
        raise ValueError(f"{name}: expected a non-empty list, got []")
    for item in value:
        if int in types or float in types:
            check_number(name, item, low=spec.get("low"), high=spec.get("high"), strict=spec.get("strict", False),
                         integer=float not in types)
        elif str in types and not isinstance(item, str):
            raise ValueError(f"{name}: expected a list of strings, got the item {item!r}")
        if spec.get("choices") is not None:
            check_choice(name, item, spec["choices"])


def check_fields(cfg: Any, prefix: str) -> None:
    """Check every field of the dataclass ``cfg`` against its type (int, float, bool, str, tuple, or any of
    these ``| None``) and its :func:`rule`; the error names ``prefix.field``."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        name, value = f"{prefix}.{f.name}" if prefix else f.name, getattr(cfg, f.name)
        options = _options(hints[f.name])
        optional = type(None) in options
        if optional and value is None:
            continue
        spec = f.metadata.get("rule", {})
        items = _tuple_items(hints[f.name])
        if items is not None:
            _check_items(name, value, items, spec)
            continue
        if int in options or float in options:
            check_number(name, value, low=spec.get("low"), high=spec.get("high"), strict=spec.get("strict", False),
                         integer=float not in options, optional=optional)
        elif bool in options and not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        elif str in options and not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        if spec.get("choices") is not None:
            check_choice(name, value, spec["choices"])
        if spec.get("folder_name"):
            check_folder_name(name, value)
