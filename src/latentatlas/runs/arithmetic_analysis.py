"""The judged part of the ``attributes`` stage: the attribute classifier that judges decoded images, and the
checked arithmetic of attribute pairs (see :mod:`latentatlas.latent.arithmetic_check`) with its figures."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from latentatlas.latent import arithmetic_check as ac
from latentatlas.latent import attributes as at
from latentatlas.runs.analysis_context import Context
from latentatlas.runs.figures import pyplot, save_figure, save_image_grid
from latentatlas.runs.store import safe_name
from latentatlas.validate import check_choice

log = logging.getLogger(__name__)

DEFAULT_PAIRS = (("Smiling", "Male"), ("Eyeglasses", "Male"), ("Blond_Hair", "Young"))
JUDGES = ("auto", "pixel", "celeba-attributes")
PIXEL_JUDGE_ROWS = 4000
GRID_COLUMNS = ("a", "b", "c", "a - b + c", "c + balanced")


def parse_pairs(pairs: list | None, names: list[str], source: str) -> list[tuple[str, str]]:
    """Pairs 'A/B' (or (A, B)) checked against the run's attribute ``names``; None gives the
    :data:`DEFAULT_PAIRS` whose names the run has (none for class labels)."""
    if pairs is None:
        return [p for p in DEFAULT_PAIRS if all(n in names for n in p)] if source == "attributes" else []
    out = []
    for item in pairs:
        parts = item.split("/") if isinstance(item, str) else list(item)
        if len(parts) != 2 or parts[0] == parts[1] or any(p not in names for p in parts):
            raise ValueError(f"pairs (--pair): expected A/B with two different names among the run's attributes "
                             f"({', '.join(names)}), got {item!r}")
        out.append((parts[0], parts[1]))
    if out and source != "attributes":
        raise ValueError(f"pairs (--pair): the checked arithmetic needs attributes that occur together, but the "
                         f"run's data has one class label per image; got {list(pairs)}")
    return out


def judged_names(chosen: list[str], pairs: list[tuple[str, str]], names: list[str]) -> list[str]:
    """Every attribute the judge is asked about: the chosen ones, the pairs' and their identity attributes."""
    wanted = [*chosen, *(n for p in pairs for n in (*p, *ac.identity_attributes(names, *p)))]
    return list(dict.fromkeys(wanted))


def attribute_judge(ctx: Context, table: np.ndarray, names: list[str], needed: list[str], *, source: str,
                    judge="auto"):
    """The classifier that judges decoded images (``attribute_names``; ``attribute_probs(x (B, C, H, W) in
    [0, 1]) -> (B, A)``): ``judge`` itself when it is not a name; for data with attribute names ('auto') the
    celeba-attributes network of :mod:`latentatlas.metrics.features`, trained on the training split; for class
    labels (or 'pixel') pixel logistic classifiers of the ``needed`` columns; trained ones are seeded with the run's
    ``data_seed``.  None without images."""
    if not isinstance(judge, str):
        return judge
    check_choice("judge", judge, JUDGES)
    if ctx.images is None:
        return None
    train, seed = ctx.rows("train"), ctx.run.config.data_seed
    if judge == "celeba-attributes" or (judge == "auto" and source == "attributes"):
        from latentatlas.metrics.features import build_extractor

        data = ctx.dataset.subset(torch.as_tensor(train, dtype=torch.long))
        return build_extractor("celeba-attributes", dataset=data, device=ctx.device, seed=seed)
    rows = train[:PIXEL_JUDGE_ROWS]
    cols = [names.index(n) for n in needed]
    return at.PixelJudge(ctx.float_images(rows), table[rows][:, cols], list(needed), seed=seed)


def pair_stem(a: str, b: str) -> str:
    """The file stem of the figures of pair A/B: ``attr_pair_A_B`` (grid) and ``attr_pair_A_B_sweep``."""
    return f"attr_pair_{safe_name(a)}_{safe_name(b)}"


def judge_name(judge) -> str:
    return str(getattr(judge, "name", type(judge).__name__))


def judge_codes(ctx: Context, judge, chunk: int = 512) -> Callable[[torch.Tensor], np.ndarray]:
    """codes (n, d) -> the judge's probabilities (n, A) of their decoded images, in chunks of ``chunk``."""
    def run(codes: torch.Tensor) -> np.ndarray:
        parts = [at.judge_probabilities(judge, ctx.decode(codes[s:s + chunk])) for s in range(0, len(codes), chunk)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, len(judge.attribute_names)))
    return run


def checked_pairs(ctx: Context, table: np.ndarray, names: list[str], pairs: list[tuple[str, str]], judge, *,
                  generator: torch.Generator, balance_on: list[str], n_triples: int, max_flips: int,
                  scales: tuple[float, ...], step_scale: float | None, n_show: int, seed: int) -> tuple[dict, dict]:
    """Metrics per pair 'A/B' (rates per variant, sweeps) and the captions of its figures."""
    train, test = ctx.rows("train"), ctx.rows("test")
    out, captions = {}, {}
    for a, b in pairs:
        key = f"{a}/{b}"
        groups = ac.triple_groups(table[:, names.index(a)], table[:, names.index(b)], test)
        y_train = table[train, names.index(a)]
        empty = [g for g, rows in groups.items() if len(rows) == 0]
        if empty or y_train.min() == y_train.max():
            reason = (f"no test codes in group(s) {empty} (a: {a} and {b}, b: {b} only, c: neither)" if empty
                      else f"{a} has one value only in the training codes")
            log.warning("attributes: pair %s skipped: %s", key, reason)
            out[key] = {"skipped": reason}
            continue
        check = ac.evaluate_pair(ctx.z, table, names, (a, b), train_rows=train, test_rows=test,
                                 judge_codes=judge_codes(ctx, judge), judge_names=list(judge.attribute_names),
                                 generator=generator, balance_on=tuple(balance_on), n_triples=n_triples,
                                 max_flips=max_flips, scales=scales, step_scale=step_scale, seed=seed)
        out[key] = check.metrics
        stem = pair_stem(a, b)
        _save_grid(ctx, f"{stem}.png", check, n_show)
        captions[f"{stem}.png"] = (f"{key}, one triple per row: a ({a} and {b}), b ({b} only), c (neither), "
                                   f"a - b + c, and c plus the balanced {a} vector")
        _save_sweep(ctx.run.figure_path(f"{stem}_sweep.png"), check.metrics["sweep"], (a, b))
        captions[f"{stem}_sweep.png"] = (f"mean P({a}) and P({b}) the judge gives to decoded c + s u, with u = "
                                         f"a - b (triple) or the {a} vector times its group-mean gap")
    return out, captions


def _save_grid(ctx: Context, name: str, check: ac.PairCheck, n_show: int) -> None:
    rows = torch.as_tensor(check.triples[:n_show], dtype=torch.long)
    za, zb, zc = ctx.z[rows[:, 0]], ctx.z[rows[:, 1]], ctx.z[rows[:, 2]]
    bal = zc + torch.as_tensor(check.steps["balanced"], dtype=zc.dtype)
    codes = torch.stack([za, zb, zc, at.arithmetic(za, zb, zc), bal], dim=1)
    save_image_grid(ctx.run.figure_path(name), ctx.decode(codes.reshape(-1, codes.shape[2])), nrow=len(GRID_COLUMNS))


def _save_sweep(path, sweep: dict, pair: tuple[str, str]) -> None:
    """Two panels, P(A) and P(B) against the scale, one line per variant."""
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.5), dpi=100, sharey=True)
    for ax, key, attr in zip(axes, ("p_a", "p_b"), pair):
        for variant in ac.VARIANTS:
            ax.plot(sweep["scales"], sweep[variant][key], marker="o", markersize=3, label=variant)
        ax.axhline(0.5, color="#999", lw=0.8, ls="--")
        ax.set_xlabel("scale s (c + s u)")
        ax.set_title(f"P({attr})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean probability by the judge")
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, path)
