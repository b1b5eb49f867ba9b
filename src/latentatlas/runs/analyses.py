"""The latent-analysis stages of a run: ``interpolate``, ``attributes`` and ``geometry``.

Each reads the model (checkpoints/best.pt) and latents.npz, writes figures ``interp_*``, ``attr_*``,
``geom_*`` and numbers into metrics.json sections 'interpolation', 'attributes', 'geometry' (with a
caption per figure under 'figures'), and returns the numbers it wrote.  ``model`` and ``dataset`` may
be passed in to skip loading them (notebooks, tests).  The attribute and geometry stages live in
:mod:`~latentatlas.runs.attribute_analysis` and :mod:`~latentatlas.runs.geometry_analysis` and are
re-exported here.
"""

from __future__ import annotations

import logging

import torch

from latentatlas.data.base import ImageDataset
from latentatlas.latent import interpolate as interp
from latentatlas.latent import quality
from latentatlas.rng import derive_seed, make_generator
from latentatlas.runs.analysis_context import feature_function, load_context, save_captions
from latentatlas.runs.attribute_analysis import attributes_stage  # noqa: F401  (a stage of this module)
from latentatlas.runs.figures import save_image_grid, save_line_plot
from latentatlas.runs.geometry_analysis import geometry_stage  # noqa: F401  (a stage of this module)
from latentatlas.runs.store import Run

log = logging.getLogger(__name__)

__all__ = ["interpolate_stage", "attributes_stage", "geometry_stage"]


# ----------------------------------------------------------------------------------- interpolation
def interpolate_stage(run: Run, *, n_pairs: int = 64, steps: int = 9, method: str = "slerp", seed: int = 0,
                      device: torch.device | str = "cpu", n_frechet: int = 1000,
                      extractor: str | torch.nn.Module | None = None, geodesic_pairs: int = 8,
                      geodesic_iters: int = 200, learned_iters: int = 0, model: torch.nn.Module | None = None,
                      dataset: ImageDataset | None = None) -> dict:
    """Interpolate between random pairs of test codes with every registered interpolator and measure
    midpoint Fréchet distance, smoothness, cycle error, realism per frame and the endpoint gap; then
    the optimised geodesic (and, with ``learned_iters``, a learned interpolation network) on a few pairs."""
    interp.INTERPOLATORS.get(method)
    if n_pairs < 2 or steps < 3:
        raise ValueError(f"n_pairs, steps: expected n_pairs >= 2 and steps >= 3, got {n_pairs}, {steps}")
    ctx = load_context(run, device=device, model=model, dataset=dataset)
    g = make_generator(derive_seed(seed, "interpolate"))
    test = ctx.rows("test")
    pairs = torch.as_tensor(test)[interp.random_pairs(len(test), max(n_pairs, n_frechet), generator=g)]
    i0, i1 = pairs[:n_pairs, 0].numpy(), pairs[:n_pairs, 1].numpy()
    z0, z1 = ctx.z[i0], ctx.z[i1]
    t = interp.steps(steps)
    features, ext_name = feature_function(ctx, extractor, seed)
    real_rows = test[torch.randperm(len(test), generator=g)[:n_frechet].numpy()]
    x_real = ctx.float_images(real_rows)
    real_f = features(x_real)
    x0, x1 = ctx.float_images(i0), ctx.float_images(i1)
    out: dict = {"method": method, "n_pairs": n_pairs, "steps": steps, "extractor": ext_name,
                 "frechet_reconstruction": quality.frechet_distance(real_f, features(ctx.decode(ctx.z[real_rows])))}
    frames_by: dict[str, torch.Tensor] = {}
    realism_curves, cycle_curves = {}, {}
    for name in interp.INTERPOLATORS.names():
        path = interp.interpolate(name, z0, z1, t)
        frames = ctx.decode(path.reshape(-1, path.shape[2])).reshape(n_pairs, steps, *x0.shape[1:])
        frames_by[name] = frames
        realism = quality.path_realism(features, real_f, frames)
        cycle = quality.cycle_error(ctx.encode, ctx.decode, path)
        realism_curves[name] = list(zip(t.tolist(), realism.tolist()))
        cycle_curves[name] = list(zip(t.tolist(), cycle.tolist()))
        fz0, fz1 = ctx.z[pairs[:, 0]], ctx.z[pairs[:, 1]]
        out[name] = {"midpoint_fd": quality.midpoint_frechet(ctx.decode, features, real_f, fz0, fz1,
                                                             interp.INTERPOLATORS.get(name)),
                     **quality.smoothness(frames), "cycle_error_mean": float(cycle.mean()),
                     "cycle_error_mid": float(cycle[steps // 2]), "realism_mean": float(realism.mean()),
                     "realism_mid": float(realism[steps // 2]),
                     "endpoint_gap_mse": quality.endpoint_gap(frames, x0, x1)}
    captions = _interpolation_figures(ctx, method, frames_by, x0, x1, t, realism_curves, cycle_curves, g)
    if geodesic_pairs > 0:
        out["geodesic"], more = _geodesics(ctx, z0[:geodesic_pairs], z1[:geodesic_pairs], steps, features,
                                           real_f, geodesic_iters, learned_iters, g)
        captions.update(more)
    run.update_metrics("interpolation", out)
    save_captions(run, captions)
    return out


def _interpolation_figures(ctx, method, frames_by, x0, x1, t, realism_curves, cycle_curves, g) -> dict:
    run, n_show = ctx.run, min(8, x0.shape[0])
    frames = frames_by[method][:n_show]
    strip = torch.cat([x0[:n_show, None], frames, x1[:n_show, None]], dim=1)
    save_image_grid(run.figure_path("interp_strips.png"), strip.flatten(0, 1), nrow=strip.shape[1])
    rows = torch.stack([frames_by[m][:4] for m in interp.INTERPOLATORS.names()], dim=1)   # (4, M, T, ...)
    save_image_grid(run.figure_path("interp_methods.png"), rows.flatten(0, 2), nrow=len(t))
    corners = ctx.z[torch.as_tensor(ctx.rows("test"))[torch.randperm(len(ctx.rows("test")), generator=g)[:4]]]
    grid = interp.interpolate_grid(corners, 8, method=method)
    save_image_grid(run.figure_path("interp_grid.png"), ctx.decode(grid.reshape(64, -1)), nrow=8)
    save_line_plot(run.figure_path("interp_realism.png"), realism_curves, xlabel="t",
                   ylabel="fraction of frames inside the real k-NN manifold", title="realism along the path")
    save_line_plot(run.figure_path("interp_cycle.png"), cycle_curves, xlabel="t",
                   ylabel="||E(D(z)) - z||", title="decode-encode cycle error along the path")
    names = ", ".join(interp.INTERPOLATORS.names())
    return {"interp_strips.png": f"{method} between random test pairs: original, frames, original",
            "interp_methods.png": f"the same 4 pairs, one row per interpolator ({names})",
            "interp_grid.png": f"iterated {method} interpolation between 4 test codes at the corners",
            "interp_realism.png": "fraction of decoded frames inside the k-NN manifold of real features (k=3)",
            "interp_cycle.png": "distance between a code and its re-encoded decoding along the path"}


def _geodesics(ctx, z0, z1, steps, features, real_f, iters, learned_iters, g) -> tuple[dict, dict]:
    from latentatlas.latent import geodesic

    t = interp.steps(steps)
    straight = interp.lerp(z0, z1, t)
    curve = geodesic.optimise_geodesic(ctx.decode_grad, z0.to(ctx.device), z1.to(ctx.device), n_points=steps,
                                       iters=iters, lr=5e-2).cpu()
    curves = {"straight": straight, "geodesic": curve}
    if learned_iters > 0:
        train = ctx.z[torch.as_tensor(ctx.rows("train"))].to(ctx.device)
        net = geodesic.train_interpolation_net(ctx.decode_grad, train, n_points=steps, iters=learned_iters,
                                               batch_size=16, generator=g)
        with torch.no_grad():
            curves["learned"] = net(z0.to(ctx.device), z1.to(ctx.device), t.to(ctx.device)).cpu()
    out, strips = {}, []
    shape = ctx.images.shape[1:] if ctx.images is not None else None
    for name, c in curves.items():
        with torch.no_grad():
            length = float(geodesic.path_length(ctx.decode_grad, c.to(ctx.device)).mean())
        frames = ctx.decode(c.reshape(-1, c.shape[2])).reshape(c.shape[0], steps, *shape)
        out[f"{name}_length"] = length
        out[f"{name}_realism"] = float(quality.path_realism(features, real_f, frames).mean())
        out[f"{name}_step_cv"] = quality.smoothness(frames)["step_cv"]
        strips.append(frames[:4])
    save_image_grid(ctx.run.figure_path("interp_geodesic.png"), torch.stack(strips, 1).flatten(0, 2), nrow=steps)
    caption = "per pair, one row each: " + ", ".join(curves) + " (energy-minimising curve under the decoder)"
    return out, {"interp_geodesic.png": caption}

