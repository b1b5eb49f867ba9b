"""The ``attributes`` stage: attribute vectors from the run's attributes (CelebA) or labels (one class
against the rest), their AUC as classifiers on test codes, scale sweeps judged by an attribute classifier,
and code arithmetic: checked on many triples for attribute pairs (:mod:`latentatlas.runs.arithmetic_analysis`),
drawn for class labels."""

from __future__ import annotations

import logging

import numpy as np
import torch

from latentatlas.data.base import ImageDataset
from latentatlas.latent import attributes as at
from latentatlas.runs import arithmetic_analysis as aa
from latentatlas.rng import derive_seed, make_generator
from latentatlas.runs.analysis_context import Context, load_context, save_captions
from latentatlas.runs.figures import save_image_grid, save_line_plot
from latentatlas.runs.store import Run, safe_name
from latentatlas.validate import check_choice

log = logging.getLogger(__name__)

DEFAULT_CELEBA = ("Smiling", "Male", "Eyeglasses", "Young")
VARIANTS = ("mean", "balanced", "refined", "probe")


def check_method(method: str) -> None:
    """``method`` names one of the attribute vectors' VARIANTS."""
    check_choice("method", method, VARIANTS)


def attribute_table(latents: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str], str]:
    """(N, A) 0/1 table, names, and its source ('attributes', or 'labels' as one-vs-rest columns)."""
    if "attributes" in latents and latents["attributes"].size:
        table = (np.asarray(latents["attributes"]) > 0).astype(np.int8)
        return table, [str(n) for n in latents["attribute_names"]], "attributes"
    if "labels" in latents:
        labels = np.asarray(latents["labels"])
        classes = np.unique(labels)
        return (labels[:, None] == classes[None]).astype(np.int8), [f"label_{c}" for c in classes], "labels"
    raise ValueError("latents.npz has neither attributes nor labels: the attributes stage needs one of them")


def _pick(names: list[str], wanted: list[str] | None, max_attributes: int) -> list[str]:
    if wanted:
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(f"attributes: unknown name(s) {unknown}; expected some of {names}")
        return list(wanted)
    preferred = [n for n in DEFAULT_CELEBA if n in names]
    return (preferred or names)[:max_attributes]


def attributes_stage(run: Run, *, attributes: list[str] | None = None, method: str = "balanced",
                     balance_on: list[str] | None = None, pairs: list | None = None, judge="auto",
                     max_attributes: int = 4, scales: tuple[float, ...] = (-2, -1, -0.5, 0, 0.5, 1, 2),
                     n_triples: int = 300, max_identity_flips: int = 1, step_scale: float | None = None,
                     pair_scales: tuple[float, ...] = (-1, 0, 0.5, 1, 1.5, 2, 3),
                     n_show: int = 6, n_judge: int = 128, seed: int = 0, device: torch.device | str = "cpu",
                     model: torch.nn.Module | None = None, dataset: ImageDataset | None = None) -> dict:
    """Attribute vectors by every variant (mean, balanced, refined, probe) on training codes, each one's
    AUC on test codes, and for the ``method`` vector: decoded scale sweeps judged by an attribute classifier
    (``judge``: 'auto', 'pixel', 'celeba-attributes' or a module, see
    :func:`~latentatlas.runs.arithmetic_analysis.attribute_judge`).  Scales are in units of the gap between
    the group means along v.  'balanced' balances each attribute on ``balance_on`` (default: the other chosen
    attributes, e.g. Smiling on Male), so that correlated attributes do not leak into its vector.
    ``pairs`` ('A/B', default: Smiling/Male, Eyeglasses/Male, Blond_Hair/Young where present) get the
    checked arithmetic of :mod:`latentatlas.latent.arithmetic_check` on ``n_triples`` triples (vector steps
    ``step_scale`` x the group-mean gap, or fitted on training triples when None; sweeps over
    ``pair_scales``); data with class labels gets the drawn arithmetic of two labels instead."""
    check_method(method)
    ctx = load_context(run, device=device, model=model, dataset=dataset)
    table, names, source = attribute_table(ctx.latents)
    chosen = _pick(names, attributes, max_attributes)
    checked = aa.parse_pairs(pairs, names, source)
    balance_names = _pick(names, balance_on, len(names)) if balance_on else chosen
    train, test = ctx.rows("train"), ctx.rows("test")
    g = make_generator(derive_seed(seed, "attributes"))
    s = torch.tensor(scales, dtype=torch.float32)
    z = ctx.z.double().numpy()
    judge = aa.attribute_judge(ctx, table, names, aa.judged_names(chosen, checked, names), source=source,
                               judge=judge)
    judged_by = list(judge.attribute_names) if judge is not None else []
    out: dict = {"source": source, "method": method, "scales": list(scales),
                 "balanced_on": balance_names if source == "attributes" else [],
                 "judge": aa.judge_name(judge) if judge is not None else None}
    captions, judged, vectors = {}, {}, {}
    for name in chosen:
        j = names.index(name)
        y = table[:, j]
        if y[train].min() == y[train].max() or y[test].min() == y[test].max():
            log.warning("attributes: %s has one value only in train or test; skipped", name)
            continue
        cols = [names.index(n) for n in balance_names if n != name][:3]
        nuis = table[:, cols] if cols and source == "attributes" else None
        vec = {"mean": at.mean_difference(z[train], y[train]),
               "balanced": at.balanced_difference(z[train], y[train], None if nuis is None else nuis[train]),
               "refined": at.refined_direction(z[train], y[train])[0],
               "probe": at.probe_direction(z[train], y[train], seed=seed)}
        v = vec[method]
        res = {f"auc_{k}": at.projection_auc(z[test], y[test], u) for k, u in vec.items()}
        res["cos_mean_balanced"] = float(vec["mean"] @ vec["balanced"])
        res["cos_mean_probe"] = float(vec["mean"] @ vec["probe"])
        gap = at.group_gap(z[train], y[train], v)
        res["group_gap"] = gap
        vectors[name] = torch.from_numpy(v * gap).float()
        if name in judged_by:
            k = judged_by.index(name)
            clf = _column(judge, k)
            if ctx.images is not None:
                res["judge_auc_real"] = at.auc(clf(ctx.float_images(test[:2000])).numpy(), y[test[:2000]])
            without = test[y[test] == 0]
            pick = without[torch.randperm(len(without), generator=g)[:n_judge].numpy()]
            probs = at.judged_along_vector(clf, ctx.decode, ctx.z[pick], vectors[name].numpy(), s)
            res["judged"] = [float(p) for p in probs]
            res["judge_gain"] = float(probs[-1] - probs[list(scales).index(0)]) if 0 in scales else None
            judged[name] = list(zip(scales, probs.tolist()))
        fname = f"attr_sweep_{safe_name(name)}.png"
        show = test[y[test] == 0][:n_show]
        sweep = at.scale_sweep(ctx.z[show], vectors[name].numpy(), s)
        save_image_grid(run.figure_path(fname), ctx.decode(sweep.reshape(-1, sweep.shape[2])), nrow=len(scales))
        captions[fname] = (f"{name}: test codes without it, moved along the {method} vector by "
                           f"{', '.join(str(x) for x in scales)} x the group-mean gap")
        out[name] = res
    if judged:
        save_line_plot(run.figure_path("attr_judge.png"), judged, xlabel="scale along the attribute vector",
                       ylabel=f"P(attribute) by the judge ({out['judge']})", title="attribute along its vector")
        captions["attr_judge.png"] = f"mean attribute probability the judge ({out['judge']}) gives to decoded sweeps"
    if checked and judge is not None:
        out["pairs"], more = aa.checked_pairs(ctx, table, names, checked, judge, generator=g,
                                              balance_on=balance_names, n_triples=n_triples,
                                              max_flips=max_identity_flips, scales=pair_scales,
                                              step_scale=step_scale, n_show=n_show, seed=seed)
        captions.update(more)
    elif len(vectors) >= 2:
        out["arithmetic"], more = _arithmetic(ctx, table, names, list(vectors)[:2], judge, n_show)
        captions.update(more)
    run.update_metrics("attributes", out)
    save_captions(run, captions)
    return out


def _column(judge, k: int):
    """images -> the judge's probability of its attribute k (n,)."""
    return lambda x: at.judge_probabilities(judge, x)[:, k]


def _arithmetic(ctx: Context, table, names, pair: list[str], judge, n_show: int) -> tuple[dict, dict]:
    """(A and not B) - (not A and not B) + (not A and B): e.g. smiling woman - woman + man."""
    a_col, b_col = table[:, names.index(pair[0])], table[:, names.index(pair[1])]
    test = ctx.rows("test")
    groups = {key: test[(a_col[test] == ka) & (b_col[test] == kb)] for key, (ka, kb) in
              {"a": (1, 0), "b": (0, 0), "c": (0, 1)}.items()}
    if any(len(v) == 0 for v in groups.values()):
        return {"skipped": f"no test codes in one of the groups of {pair}"}, {}
    a = ctx.z[groups["a"][:n_show]]
    b = ctx.z[groups["b"]].mean(0, keepdim=True).expand_as(a)
    c = ctx.z[groups["c"]].mean(0, keepdim=True).expand_as(a)
    result = at.arithmetic(a, b, c)
    images = ctx.decode(torch.stack([a, b, c, result], 1).reshape(-1, a.shape[1]))
    save_image_grid(ctx.run.figure_path("attr_arithmetic.png"), images, nrow=4)
    out: dict = {"expression": f"({pair[0]} & not {pair[1]}) - (neither) + ({pair[1]} & not {pair[0]})"}
    if judge is not None:
        probs = at.judge_probabilities(judge, ctx.decode(result)).mean(dim=0)
        for name in pair:
            if name in judge.attribute_names:
                out[f"p_{name}"] = float(probs[list(judge.attribute_names).index(name)])
    caption = (f"code arithmetic per row: a = {pair[0]} without {pair[1]}, b = mean of neither, "
               f"c = mean of {pair[1]} only, a - b + c")
    return out, {"attr_arithmetic.png": caption}
