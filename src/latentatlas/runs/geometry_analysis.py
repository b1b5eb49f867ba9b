"""The ``geometry`` stage: per-dimension KL and active units, convex-hull membership (and its fall with
dimension, latent vs pixel space), distances, axis walks, Gaussianity of the aggregate posterior,
re-projection drift, and 2-D/3-D maps of the codes."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from latentatlas.data.base import ImageDataset
from latentatlas.latent import geometry as geo
from latentatlas.latent import maps
from latentatlas.rng import derive_seed, make_generator
from latentatlas.runs.analysis_context import Context, load_context, save_captions
from latentatlas.runs.figures import (save_bar_plot, save_distance_figure, save_image_grid, save_line_plot,
                                      save_scatter)
from latentatlas.runs.store import Run

log = logging.getLogger(__name__)
BIC_CODES = 5000   # training codes the BIC curve is fitted on, at most


def geometry_stage(run: Run, *, n_hull: int = 3000, n_query: int = 200, dims: Sequence[int] = (2, 4, 8, 16, 32),
                   n_distance: int = 1000, n_map: int = 1500, map_methods: Sequence[str] = ("pca", "tsne", "isomap"),
                   n_walk: int = 8, walk_scale: float = 2.0, drift_codes: int = 64, drift_iters: int = 10,
                   bic_ks: Sequence[int] | None = None, seed: int = 0, device: torch.device | str = "cpu",
                   model: torch.nn.Module | None = None, dataset: ImageDataset | None = None) -> dict:
    """Run every geometry diagnostic on the run's codes and write figures ``geom_*.png`` (``bic_ks`` None:
    the grid of k that the gmm sampler's ``k=auto`` tries on as many codes)."""
    unknown = [m for m in map_methods if m not in maps.METHODS]
    if unknown:
        raise ValueError(f"map_methods: unknown {unknown}; expected some of {maps.METHODS}")
    ctx = load_context(run, device=device, model=model, dataset=dataset)
    g = make_generator(derive_seed(seed, "geometry"))
    train, test = ctx.rows("train"), ctx.rows("test")
    z = ctx.z.double().numpy()
    fitted = z[train][:BIC_CODES]   # the codes the BIC curve is fitted on: its grid checked before any work
    ks = None if bic_ks is None else [k for k in bic_ks if k < len(fitted)]
    if ks == []:
        raise ValueError(f"bic_ks: expected a k below the {len(fitted)} codes fitted, got {list(bic_ks)}")
    out: dict = {"latent_dim": int(z.shape[1])}
    captions: dict[str, str] = {}
    captions.update(_units(ctx, out))
    captions.update(_hull(ctx, out, train, test, n_hull, n_query, dims, g))
    if ctx.images is not None:
        rows = test[torch.randperm(len(test), generator=g)[:n_distance].numpy()]
        stats = geo.distance_stats(ctx.z[rows], ctx.float_images(rows), generator=g)
        out.update({k: stats[k] for k in ("pearson", "spearman", "nn_agreement")})
        save_distance_figure(run.figure_path("geom_distances.png"), stats)
        captions["geom_distances.png"] = ("distances between test codes vs between their images; "
                                          "nearest-neighbour distances")
    captions.update(_walks(ctx, out, test, n_walk, walk_scale))
    normal = geo.normality(z[test])
    out.update({k: v for k, v in normal.items() if k != "dim_pvalues"})
    bic = geo.gmm_bic_curve(fitted, ks, seed=seed)
    out.update({"bic_best_k": bic["best_k"], "bic_best_k_at_edge": bic["at_edge"]})
    save_line_plot(run.figure_path("geom_bic.png"), {"BIC": list(zip(bic["k"], bic["bic"]))},
                   xlabel="mixture components k", ylabel="BIC (lower is better)",
                   title="is the aggregate posterior one Gaussian?")
    captions["geom_bic.png"] = (f"BIC of Gaussian mixtures fitted to {len(fitted)} training codes (best k = "
                                f"{bic['best_k']}" + (", the largest tried: more components may fit better still)"
                                                      if bic["at_edge"] else ")"))
    pick = test[torch.randperm(len(test), generator=g)[:drift_codes].numpy()]
    drift = geo.reprojection_drift(ctx.encode, ctx.decode, ctx.z[pick], n_iter=drift_iters)
    out.update({"drift_first_step": float(drift["step"][0]), "drift_last_step": float(drift["step"][-1]),
                "drift_from_start": float(drift["from_start"][-1])})
    iters = range(1, drift_iters + 1)
    save_line_plot(run.figure_path("geom_drift.png"), {"step": list(zip(iters, drift["step"])),
                                                       "from start": list(zip(iters, drift["from_start"]))},
                   xlabel="decode-encode iteration", ylabel="mean code distance", title="re-projection drift")
    captions["geom_drift.png"] = "iterating z <- E(D(z)) from test codes: distance per step and from the start"
    captions.update(_maps(ctx, test, n_map, map_methods, seed, g))
    run.update_metrics("geometry", out)
    save_captions(run, captions)
    return out


def _units(ctx: Context, out: dict) -> dict:
    kl = geo.kl_per_dim(ctx.latents["z_mean"], ctx.latents.get("z_logvar"))
    activity, n_active = geo.active_units(ctx.latents["z_mean"])
    out.update({"active_units": n_active, "kl_total": None if np.isnan(kl).all() else float(kl.sum())})
    series = {"activity Var[E(z|x)]": activity}
    if not np.isnan(kl).all():
        series["KL per dim"] = kl
    save_bar_plot(ctx.run.figure_path("geom_units.png"), series, xlabel="latent dimension", ylabel="nats / variance",
                  title=f"{n_active} active units (activity > 0.01)")
    return {"geom_units.png": "per-dimension activity of the posterior means and mean KL to the prior"}


def _hull(ctx: Context, out: dict, train, test, n_hull, n_query, dims, g) -> dict:
    z = ctx.z.double().numpy()
    hull_rows = train[torch.randperm(len(train), generator=g)[:n_hull + n_query].numpy()]
    held, hull_rows = hull_rows[:n_query], hull_rows[n_query:]
    queries = test[torch.randperm(len(test), generator=g)[:n_query].numpy()]
    out["hull_fraction_test"] = geo.hull_fraction(z[queries], z[hull_rows])
    out["hull_fraction_train"] = geo.hull_fraction(z[held], z[hull_rows])
    fit_rows = np.concatenate([held, hull_rows])
    spaces = {"latent": (z[fit_rows], z[queries])}
    if ctx.images is not None:
        flat = lambda r: ctx.float_images(r).reshape(len(r), -1).double().numpy()  # noqa: E731
        spaces["pixel"] = (flat(fit_rows), flat(queries))
    series = {}
    for name, (tr, te) in spaces.items():
        ks = sorted({k for k in dims if k <= min(tr.shape[1], len(hull_rows))})
        if not ks:
            continue
        curve = geo.hull_fraction_vs_dim(tr, te, ks, n_query=len(held), generator=g)
        out[f"hull_vs_dim_{name}"] = curve
        series[f"{name}, test"] = list(zip(curve["dim"], curve["test"]))
        series[f"{name}, train (held out)"] = list(zip(curve["dim"], curve["train"]))
    save_line_plot(ctx.run.figure_path("geom_hull_vs_dim.png"), series, xlabel="dimensions (top principal directions)",
                   ylabel="fraction inside the training hull", title="convex-hull membership vs dimension")
    return {"geom_hull_vs_dim.png": ("fraction of codes / images inside the convex hull of training ones after "
                                     "projection on the top-k principal directions (exact LP)")}


def _walks(ctx: Context, out: dict, test, n_walk: int, walk_scale: float) -> dict:
    offsets = torch.linspace(-walk_scale, walk_scale, 7)
    centre = ctx.z[torch.as_tensor(test)].mean(0)
    dirs, std = geo.principal_directions(ctx.z[torch.as_tensor(test)], n_walk)
    star = geo.axis_walk(centre, dirs * std[:, None], offsets)
    save_image_grid(ctx.run.figure_path("geom_walk_pca.png"), ctx.decode(star.reshape(-1, star.shape[2])), nrow=7)
    activity, _ = geo.active_units(ctx.latents["z_mean"])
    axes = np.argsort(-activity)[:n_walk]
    eye = torch.eye(ctx.z.shape[1])[torch.as_tensor(axes.copy())]
    scale = torch.from_numpy(np.sqrt(activity[axes])).float()
    star = geo.axis_walk(centre, eye * scale[:, None], offsets)
    save_image_grid(ctx.run.figure_path("geom_walk_axes.png"), ctx.decode(star.reshape(-1, star.shape[2])), nrow=7)
    out["walk_axes"] = [int(a) for a in axes]
    return {"geom_walk_pca.png": f"from the mean test code along each of the top {len(dirs)} principal directions, "
                                 f"-{walk_scale} to +{walk_scale} standard deviations",
            "geom_walk_axes.png": f"along the {len(axes)} most active latent axes {list(map(int, axes))}, "
                                  f"-{walk_scale} to +{walk_scale} standard deviations"}


def _maps(ctx: Context, test, n_map: int, methods, seed: int, g) -> dict:
    rows = test[torch.randperm(len(test), generator=g)[:n_map].numpy()]
    colour = ctx.latents.get("labels")
    if colour is None and "attributes" in ctx.latents:
        colour = ctx.latents["attributes"][:, 0]
    colour = None if colour is None else np.asarray(colour)[rows]
    captions = {}
    for method in methods:
        if method not in maps.available_methods():
            log.warning("geometry: map %s unavailable (pip install 'latentatlas[umap]'); skipped", method)
            continue
        for k in (2, 3) if method == "pca" else (2,):
            name = f"geom_map_{method}{'' if k == 2 else '_3d'}.png"
            save_scatter(ctx.run.figure_path(name), maps.embed(ctx.z[rows], method, n_components=k, seed=seed),
                          colour, title=f"{method.upper()} of {len(rows)} test codes")
            captions[name] = f"{k}-D {method} map of test codes, coloured by label"
    return captions
