"""Attribute arithmetic checked by an attribute classifier, for a pair (A, B) such as (Smiling, Male).

Triples of test codes: a holds A and B, b holds B but not A, c holds neither.  Each variant gives c the
attribute A:

- ``triple``: a - b + c (smiling man - man + woman = smiling woman);
- ``plain``, ``balanced``, ``probe``: c + s v_A, with v_A the unit direction of A on training codes by the
  mean difference, the mean difference balanced on B (and other nuisance attributes), or a logistic probe,
  and s the gap between the training group means along v_A;
- ``unchanged``: c itself, the baseline that says how often the judge sees A (or misses B) already.

A result succeeds when the judge sees A (p_A > 0.5), does not see B (p_B < 0.5) and keeps c's identity:
among :data:`IDENTITY_ATTRIBUTES` (less A, B and the hair group when A or B is a hair attribute), at most
``max_flips`` attributes are judged differently on the result and on c's own decoding.  Beside it,
``success_vs_decoded`` asks only that B be judged as on c's decoding (the edit did not add B): a decoder
that already makes c look as if it had B (blurry faces look young) fails the first for every variant,
the edit included, and the second says what the arithmetic itself did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from latentatlas.latent import attributes as at
from latentatlas.validate import check_number

log = logging.getLogger(__name__)

# Attributes that describe who is in the picture (sex, age, hair, facial hair, skin, glasses, hat), not an
# expression, a pose or the photograph (Smiling, Mouth_Slightly_Open, Blurry, ...): an edit that adds a smile
# or glasses should leave them as they were on c.  Glasses and hats are accessories, but they change how a
# face is recognised, so an edit for another attribute must not add or remove them either.
IDENTITY_ATTRIBUTES = ("Male", "Young", "Eyeglasses", "Wearing_Hat", "Pale_Skin", "Mustache", "No_Beard",
                       "Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
# one face has one hair colour (or none): making it blond changes the others by definition
HAIR = ("Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
VECTOR_VARIANTS = ("plain", "balanced", "probe")
VARIANTS = ("triple", *VECTOR_VARIANTS)
BASELINE = "unchanged"
FIT_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)   # step scales (x the group-mean gap) tried on training triples
CHECKS = ("success", "a_present", "b_absent", "identity_kept", "b_as_decoded", "success_vs_decoded")

JudgeCodes = Callable[[torch.Tensor], np.ndarray]   # codes (n, d) -> probabilities (n, K) of the judge's names


def identity_attributes(names: list[str], a: str, b: str) -> list[str]:
    """The identity attributes checked for pair (a, b): :data:`IDENTITY_ATTRIBUTES` present in ``names``,
    less a, b, and the whole hair group when a or b is a hair attribute."""
    drop = {a, b} | (set(HAIR) if {a, b} & set(HAIR) else set())
    return [n for n in IDENTITY_ATTRIBUTES if n in names and n not in drop]


def triple_groups(has_a: np.ndarray, has_b: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of the three groups among ``rows``: a (A and B), b (B, not A), c (neither); has_* are 0/1 (N,)."""
    ya, yb = np.asarray(has_a)[rows] > 0, np.asarray(has_b)[rows] > 0
    return {"a": rows[ya & yb], "b": rows[~ya & yb], "c": rows[~ya & ~yb]}


def draw_triples(groups: dict[str, np.ndarray], n: int, generator: torch.Generator) -> np.ndarray:
    """``n`` triples of rows (n, 3), each member drawn uniformly (with replacement) from its group."""
    empty = [k for k in ("a", "b", "c") if len(groups[k]) == 0]
    if empty:
        raise ValueError(f"triples: no test codes in group(s) {empty} (a: A and B, b: B only, c: neither)")
    picks = [groups[k][torch.randint(len(groups[k]), (n,), generator=generator).numpy()] for k in ("a", "b", "c")]
    return np.stack(picks, axis=1)


def vector_steps(z: np.ndarray, y: np.ndarray, nuisance: np.ndarray | None, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Steps s v_A (d,) per vector variant from training codes z (N, d), labels of A y (N,) and balancing
    attributes (N, K) or None; s is the gap between the group means along the unit vector v_A."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y) > 0
    vectors = {"plain": at.mean_difference(z, y), "balanced": at.balanced_difference(z, y, nuisance),
               "probe": at.probe_direction(z, y, seed=seed)}
    return {k: at.group_gap(z, y, v) * v for k, v in vectors.items()}


def result_codes(za: torch.Tensor, zb: torch.Tensor, zc: torch.Tensor,
                 steps: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Codes (n, d) of every variant and of the baseline for triples za, zb, zc (n, d)."""
    out = {BASELINE: zc, "triple": at.arithmetic(za, zb, zc)}
    for name, step in steps.items():
        out[name] = zc + torch.as_tensor(step, dtype=zc.dtype)
    return out


def binomial_se(rate: float, n: int) -> float:
    """Standard error sqrt(p (1 - p) / n) of a rate over n independent trials."""
    return float(np.sqrt(rate * (1 - rate) / n)) if n else float("nan")


def judge_checks(probs: np.ndarray, probs_c: np.ndarray, k_a: int, k_b: int, identity: list[int],
                 max_flips: int) -> dict[str, np.ndarray]:
    """Per result (n,): A present, B absent, identity kept (at most ``max_flips`` of the ``identity`` columns
    judged differently from c's), success (all three), B judged as on c's decoding, success with that in
    place of B absent, and the number of flips."""
    probs, probs_c = np.asarray(probs), np.asarray(probs_c)
    flips = ((probs[:, identity] > 0.5) != (probs_c[:, identity] > 0.5)).sum(axis=1)
    out = {"a_present": probs[:, k_a] > 0.5, "b_absent": probs[:, k_b] < 0.5, "identity_kept": flips <= max_flips,
           "b_as_decoded": (probs[:, k_b] > 0.5) == (probs_c[:, k_b] > 0.5)}
    out["success"] = out["a_present"] & out["b_absent"] & out["identity_kept"]
    out["success_vs_decoded"] = out["a_present"] & out["b_as_decoded"] & out["identity_kept"]
    out["flips"] = flips
    return out


def rates(checks: dict[str, np.ndarray]) -> dict[str, float]:
    """Rate and binomial standard error of each of :data:`CHECKS`, the count n and the mean flips."""
    n = len(checks["success"])
    out: dict[str, float] = {"n": n}
    for key in CHECKS:
        rate = float(np.mean(checks[key])) if n else float("nan")
        out[key], out[f"{key}_se"] = rate, binomial_se(rate, n)
    out["mean_identity_flips"] = float(np.mean(checks["flips"])) if n else float("nan")
    return out


def _columns(judge_names: list[str], pair: tuple[str, str], identity: list[str]) -> tuple[int, int, list[int]]:
    """The judge's columns of A, of B and of the identity attributes."""
    return judge_names.index(pair[0]), judge_names.index(pair[1]), [judge_names.index(n) for n in identity]


def check_triples(judge_codes: JudgeCodes, judge_names: list[str], za: torch.Tensor, zb: torch.Tensor,
                  zc: torch.Tensor, steps: dict[str, np.ndarray], pair: tuple[str, str], identity: list[str],
                  max_flips: int = 1) -> dict[str, dict[str, float]]:
    """Rates of every variant (and the baseline) on the triples za, zb, zc (n, d)."""
    k_a, k_b, cols = _columns(judge_names, pair, identity)
    codes = result_codes(za, zb, zc, steps)
    probs = {name: judge_codes(c) for name, c in codes.items()}
    return {name: rates(judge_checks(p, probs[BASELINE], k_a, k_b, cols, max_flips)) for name, p in probs.items()}


def sweeps(judge_codes: JudgeCodes, judge_names: list[str], za: torch.Tensor, zb: torch.Tensor, zc: torch.Tensor,
           steps: dict[str, np.ndarray], pair: tuple[str, str], scales: tuple[float, ...]) -> dict[str, dict]:
    """Mean p_A and p_B over the codes c + s u for each scale s, u = a - b (triple) or each step s v_A."""
    k_a, k_b = judge_names.index(pair[0]), judge_names.index(pair[1])
    moves = {"triple": za - zb, **{k: torch.as_tensor(v, dtype=zc.dtype).expand_as(zc) for k, v in steps.items()}}
    out = {}
    for name, move in moves.items():
        codes = torch.cat([zc + s * move for s in scales])                        # (S n, d): one judge call
        probs = judge_codes(codes).reshape(len(scales), len(zc), -1)             # (S, n, K)
        out[name] = {"p_a": probs[:, :, k_a].mean(axis=1).tolist(), "p_b": probs[:, :, k_b].mean(axis=1).tolist()}
    return out


def fit_step_scales(judge_codes: JudgeCodes, judge_names: list[str], z: torch.Tensor, triples: np.ndarray,
                    gap_steps: dict[str, np.ndarray], pair: tuple[str, str], identity: list[str], max_flips: int,
                    scales: tuple[float, ...]) -> dict[str, float]:
    """Per vector variant, the scale of ``scales`` whose steps give the highest success on ``triples``
    (n, 3) of rows of z (N, d) (the smallest such scale on ties).  Only c enters c + s v_A: it is judged
    once, then each scaled step."""
    zc = z[torch.as_tensor(triples[:, 2], dtype=torch.long)]
    k_a, k_b, cols = _columns(judge_names, pair, identity)
    probs_c = judge_codes(zc)

    def success(step: np.ndarray) -> float:
        probs = judge_codes(zc + torch.as_tensor(step, dtype=zc.dtype))
        return float(np.mean(judge_checks(probs, probs_c, k_a, k_b, cols, max_flips)["success"]))

    return {k: max(sorted(scales), key=lambda s: (success(s * v), -s)) for k, v in gap_steps.items()}


@dataclass
class PairCheck:
    """What :func:`evaluate_pair` found: ``metrics`` (JSON-ready), the drawn ``triples`` (n, 3) of rows and
    the vector ``steps`` (d,) per variant."""

    metrics: dict
    triples: np.ndarray
    steps: dict[str, np.ndarray]


def evaluate_pair(z: torch.Tensor, table: np.ndarray, names: list[str], pair: tuple[str, str], *,
                  train_rows: np.ndarray, test_rows: np.ndarray, judge_codes: JudgeCodes, judge_names: list[str],
                  generator: torch.Generator, balance_on: tuple[str, ...] = (), n_triples: int = 300,
                  max_flips: int = 1, scales: tuple[float, ...] = (-1, 0, 0.5, 1, 1.5, 2, 3), n_sweep: int = 64,
                  step_scale: float | None = None, fit_scales: tuple[float, ...] = FIT_SCALES,
                  seed: int = 0) -> PairCheck:
    """The checked arithmetic of ``pair`` on codes z (N, d) with 0/1 attributes ``table`` (N, len(names)):
    vectors on ``train_rows``, triples drawn from ``test_rows``, 'balanced' balanced on B and then
    ``balance_on`` (at most three attributes), vector steps ``step_scale`` times the group-mean gap, rates per
    variant and judged sweeps (scales in units of the gap, or of a - b) on the first ``n_sweep`` triples.
    ``step_scale=None`` fits each vector's scale: the one of ``fit_scales`` with the highest success on
    ``n_triples`` triples of training rows (the test triples stay unseen)."""
    check_number("n_triples", n_triples, low=1, integer=True)
    check_number("max_flips", max_flips, low=0, integer=True)
    check_number("n_sweep", n_sweep, low=1, integer=True)
    if step_scale is not None:
        check_number("step_scale", step_scale, low=0, strict=True)
    for value in fit_scales:
        check_number("fit_scales", value, low=0, strict=True)
    a, b = pair
    missing = [n for n in (a, b) if n not in judge_names]
    if missing:
        raise ValueError(f"judge: has no probability for {missing}; it knows {judge_names}")
    col_a, col_b = names.index(a), names.index(b)
    balance = [n for n in dict.fromkeys((b, *balance_on)) if n in names and n != a][:3]
    zn = z.double().numpy()
    nuisance = table[train_rows][:, [names.index(n) for n in balance]]
    gap_steps = vector_steps(zn[train_rows], table[train_rows, col_a], nuisance, seed=seed)
    identity = [n for n in identity_attributes(names, a, b) if n in judge_names]
    if step_scale is None:
        fit_triples = draw_triples(triple_groups(table[:, col_a], table[:, col_b], train_rows), n_triples, generator)
        fitted = fit_step_scales(judge_codes, judge_names, z, fit_triples, gap_steps, pair, identity, max_flips,
                                 fit_scales)
        at_top = sorted(k for k, value in fitted.items() if value == max(fit_scales))
        if at_top:
            log.warning("arithmetic %s/%s: the fitted step scale of %s is the largest tried (%g x the gap); "
                        "larger steps may do better", a, b, ", ".join(at_top), max(fit_scales))
    else:
        fitted, at_top = dict.fromkeys(gap_steps, float(step_scale)), []
    steps = {k: fitted[k] * v for k, v in gap_steps.items()}
    groups = triple_groups(table[:, col_a], table[:, col_b], test_rows)
    triples = draw_triples(groups, n_triples, generator)
    za, zb, zc = (z[torch.as_tensor(triples[:, i], dtype=torch.long)] for i in range(3))
    metrics = {"pair": [a, b], "n_triples": n_triples, "groups": {k: int(len(v)) for k, v in groups.items()},
               "balanced_on": balance, "identity_attributes": identity, "max_identity_flips": max_flips,
               "step_scale": fitted, "step_scale_fitted": step_scale is None, "step_scale_at_grid_top": at_top}
    metrics.update(check_triples(judge_codes, judge_names, za, zb, zc, steps, pair, identity, max_flips))
    k = min(n_sweep, n_triples)
    metrics["sweep"] = {"scales": list(scales),
                        **sweeps(judge_codes, judge_names, za[:k], zb[:k], zc[:k], gap_steps, pair, scales)}
    metrics["step_norms"] = {name: float(np.linalg.norm(v)) for name, v in steps.items()}
    return PairCheck(metrics, triples, steps)
