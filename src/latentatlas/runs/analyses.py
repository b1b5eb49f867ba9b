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
import time

import torch

from latentatlas.data.base import ImageDataset, to_float
from latentatlas.latent import interpolate as interp
from latentatlas.metrics import interpolation as quality
from latentatlas.rng import derive_seed, make_generator
from latentatlas.runs.analysis_context import feature_function, load_context, save_captions
from latentatlas.runs.attribute_analysis import attributes_stage  # noqa: F401  (a stage of this module)
from latentatlas.runs.figures import save_image_grid, save_line_plot
from latentatlas.runs.geometry_analysis import geometry_stage  # noqa: F401  (a stage of this module)
from latentatlas.runs.session import Session, as_session
from latentatlas.runs.store import Run

log = logging.getLogger(__name__)

__all__ = ["interpolate_stage", "discrete_interpolate_stage", "attributes_stage", "geometry_stage"]

SHOWN_PAIRS = 8   # interpolation pairs drawn in the figures (4 of them in the one comparing methods)


# ----------------------------------------------------------------------------------- interpolation
def interpolate_stage(run: Run, *, n_pairs: int = 64, steps: int = 9, method: str = "slerp", seed: int = 0,
                      device: torch.device | str = "cpu", n_frechet: int = 1000,
                      extractor: str | torch.nn.Module | None = None, geodesic_pairs: int = 8,
                      geodesic_iters: int = 200, learned_iters: int = 200, model: torch.nn.Module | None = None,
                      dataset: ImageDataset | None = None) -> dict:
    """Interpolate between random pairs of test codes with every registered interpolator and measure
    midpoint Fréchet distance, smoothness, cycle error, realism per frame and the endpoint gap; then
    the optimised geodesic on ``geodesic_pairs`` pairs and a learned interpolation network trained for
    ``learned_iters`` steps on pairs of training codes (0 skips it; 200 costs ~5-10 s on a CPU for the small
    MNIST models), with decoded path lengths relative to the straight line under 'geodesic'."""
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
    features, ext_name = feature_function(ctx.run, ctx.dataset, ctx.device, extractor)
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
        scores, frames_by[name] = quality.path_scores(ctx.decode, ctx.encode, features, real_f, path, x0, x1,
                                                      keep=SHOWN_PAIRS)   # frames decoded a chunk of pairs at a time
        realism, cycle, gap = scores.pop("realism"), scores.pop("cycle"), scores.pop("endpoint_gap_mse")
        realism_curves[name] = list(zip(t.tolist(), realism.tolist()))
        cycle_curves[name] = list(zip(t.tolist(), cycle.tolist()))
        fz0, fz1 = ctx.z[pairs[:, 0]], ctx.z[pairs[:, 1]]
        out[name] = {"midpoint_fd": quality.midpoint_frechet(ctx.decode, features, real_f, fz0, fz1,
                                                             interp.INTERPOLATORS.get(name)),
                     **scores, "cycle_error_mean": float(cycle.mean()), "cycle_error_mid": float(cycle[steps // 2]),
                     "realism_mean": float(realism.mean()), "realism_mid": float(realism[steps // 2]),
                     "endpoint_gap_mse": gap}
    captions = _interpolation_figures(ctx, method, frames_by, x0, x1, t, realism_curves, cycle_curves, g)
    if geodesic_pairs > 0:
        out["geodesic"], more = _geodesics(ctx, z0, z1, min(geodesic_pairs, n_pairs), steps, features, real_f,
                                           geodesic_iters, learned_iters, g)
        captions.update(more)
    run.update_metrics("interpolation", out)
    save_captions(run, captions)
    return out


def discrete_interpolate_stage(target: Run | Session, *, n_pairs: int = 64, steps: int = 9, method: str = "lerp",
                               seed: int = 0, n_frechet: int = 1000, extractor: str | torch.nn.Module | None = None,
                               device: torch.device | str | None = None) -> dict:
    """Interpolation for a model with discrete codes (VQ-VAE): between the pre-quantisation encoder outputs of
    random pairs of test images, every frame re-quantised.  Reports how many grid cells change along a path
    and the Fréchet distance of decoded midpoints (and of reconstructions) to real test images; figure
    ``interp_strips.png``.  Results under 'interpolation' in metrics.json."""
    from latentatlas.latent.discrete import cell_changes, requantized_paths

    session = as_session(target, device=device)
    run, model, data = session.run, session.model, session.data
    if getattr(model, "code_kind", "continuous") != "discrete":
        raise ValueError(f"{run.path}: the {session.config.model.family!r} model has code vectors; use interpolate")
    g = make_generator(derive_seed(seed, "interpolate"))
    test = data.part("test")
    pairs = interp.random_pairs(len(test), max(n_pairs, n_frechet), generator=g)
    features, ext_name = feature_function(run, data, session.device, extractor)
    real = to_float(test.images[torch.randperm(len(test), generator=g)[:n_frechet]])
    real_f = features(real)
    x0, x1 = (to_float(test.images[pairs[:, i]]).to(session.device) for i in (0, 1))
    codes, frames = requantized_paths(model, x0[:n_pairs], x1[:n_pairs], interp.steps(steps), method=method)
    _, mids = requantized_paths(model, x0, x1, torch.tensor([0.5]), method=method)
    out = {"method": f"{method} of encoder outputs, re-quantised", "n_pairs": n_pairs, "steps": steps,
           "extractor": ext_name, **cell_changes(codes),
           "midpoint_fd": quality.frechet_distance(real_f, features(mids[:, 0].cpu())),
           "frechet_reconstruction": quality.frechet_distance(real_f, features(session.code_map.decode(
               session.code_map.encode(real)[0])))}
    n_show = min(SHOWN_PAIRS, n_pairs)
    strip = torch.cat([x0[:n_show, None].cpu(), frames[:n_show].cpu(), x1[:n_show, None].cpu()], dim=1)
    save_image_grid(run.figure_path("interp_strips.png"), strip.flatten(0, 1), nrow=strip.shape[1])
    run.update_metrics("interpolation", out)
    save_captions(run, {"interp_strips.png": f"{method} between the encoder outputs of random test pairs, each "
                                             "frame re-quantised: original, frames, original"})
    return out


def _interpolation_figures(ctx, method, frames_by, x0, x1, t, realism_curves, cycle_curves, g) -> dict:
    run, n_show = ctx.run, min(SHOWN_PAIRS, x0.shape[0])
    frames = frames_by[method][:n_show]
    strip = torch.cat([x0[:n_show, None], frames, x1[:n_show, None]], dim=1)
    save_image_grid(run.figure_path("interp_strips.png"), strip.flatten(0, 1), nrow=strip.shape[1])
    rows = torch.stack([frames_by[m][:4] for m in interp.INTERPOLATORS.names()], dim=1)   # (4, M, T, ...)
    save_image_grid(run.figure_path("interp_methods.png"), rows.flatten(0, 2), nrow=len(t))
    corners = ctx.z[torch.as_tensor(ctx.rows("test"))[torch.randperm(len(ctx.rows("test")), generator=g)[:4]]]
    grid = interp.interpolate_grid(corners, 8, method=method)
    save_image_grid(run.figure_path("interp_grid.png"), ctx.decode(grid.reshape(64, -1)), nrow=8)
    captions = _convex_figures(ctx, method, g)
    save_line_plot(run.figure_path("interp_realism.png"), realism_curves, xlabel="t",
                   ylabel="fraction of frames inside the real k-NN manifold", title="realism along the path")
    save_line_plot(run.figure_path("interp_cycle.png"), cycle_curves, xlabel="t",
                   ylabel="||E(D(z)) - z||", title="decode-encode cycle error along the path")
    names = ", ".join(interp.INTERPOLATORS.names())
    return {**captions, "interp_strips.png": f"{method} between random test pairs: original, frames, original",
            "interp_methods.png": f"the same 4 pairs, one row per interpolator ({names})",
            "interp_grid.png": f"iterated {method} interpolation between 4 test codes at the corners: each row "
                                "interpolates between the top-edge and bottom-edge paths",
            "interp_realism.png": "fraction of decoded frames inside the k-NN manifold of real features (k=3)",
            "interp_cycle.png": "distance between a code and its re-encoded decoding along the path"}


def _convex_figures(ctx, method, g, *, n: int = 7, n_many: int = 6) -> dict:
    """A triangle of convex combinations of 3 test codes ((n + 1)(n + 2) / 2 decodes) and one test code
    interpolated towards n_many others (n_many * (n + 2) decodes)."""
    test = torch.as_tensor(ctx.rows("test"))
    n_many = min(n_many, len(test) - 4)
    if n_many < 1:
        log.info("interpolate: %d test codes are too few for the convex-combination figures", len(test))
        return {}
    codes = ctx.z[test[torch.randperm(len(test), generator=g)[:4 + n_many]]]
    images = ctx.decode(interp.convex_combination(codes[:3], interp.triangle_weights(n)))
    r, c = torch.tril_indices(n + 1, n + 1)
    cells = torch.ones(n + 1, n + 1, *images.shape[1:])               # blank (white) cells right of the diagonal
    cells[r, c] = images
    save_image_grid(ctx.run.figure_path("interp_barycentric.png"), cells.flatten(0, 1), nrow=n + 1)
    many = interp.one_vs_many(codes[3], codes[4:], interp.steps(n + 2), method=method)
    save_image_grid(ctx.run.figure_path("interp_one_vs_many.png"), ctx.decode(many.reshape(-1, many.shape[2])),
                    nrow=n + 2)
    return {"interp_barycentric.png": f"convex combinations of 3 test codes A, B, C on a triangle grid of "
                                      f"barycentric weights ({n} steps per edge): A at the top, left edge A to B, "
                                      "diagonal A to C, bottom row B to C",
            "interp_one_vs_many.png": f"{method} from one test code (left column) to {n_many} others (right column)"}


def _geodesics(ctx, z0, z1, n_geo, steps, features, real_f, iters, learned_iters, g) -> tuple[dict, dict]:
    """Straight line, optimised geodesic and learned network on the first n_geo pairs; the learned network
    also on every pair.  Lengths are decoded path lengths; '*_vs_*' are means of per-pair length ratios."""
    from latentatlas.latent import geodesic

    t, dev = interp.steps(steps), ctx.device
    curves = {"straight": interp.lerp(z0[:n_geo], z1[:n_geo], t),
              "geodesic": geodesic.geodesic_paths(ctx.decode_grad, z0[:n_geo].to(dev), z1[:n_geo].to(dev),
                                                  n_points=steps, iters=iters, lr=5e-2).cpu()}
    out: dict = {}
    if learned_iters > 0:
        start = time.perf_counter()
        train = ctx.z[torch.as_tensor(ctx.rows("train"))].to(dev)
        learned = geodesic.learned_paths(ctx.decode_grad, train, z0.to(dev), z1.to(dev), t.to(dev),
                                         iters=learned_iters, generator=g).cpu()
        out["learned_train_seconds"] = time.perf_counter() - start
        ratio = _lengths(ctx, learned, steps) / _lengths(ctx, interp.lerp(z0, z1, t), steps)
        out["learned_vs_straight_all_pairs"] = float(ratio.mean())
        curves["learned"] = learned[:n_geo]
    lengths, strips = {}, []
    for name, c in curves.items():
        frames = ctx.decode(c.reshape(-1, c.shape[2])).reshape(c.shape[0], steps, *ctx.images.shape[1:])
        lengths[name] = quality.step_sizes(frames).sum(dim=1)
        out[f"{name}_length"] = float(lengths[name].mean())
        out[f"{name}_realism"] = float(quality.path_realism(features, real_f, frames).mean())
        out[f"{name}_step_cv"] = quality.smoothness(frames)["step_cv"]
        strips.append(frames[:4])
    for a, b in (("geodesic", "straight"), ("learned", "straight"), ("learned", "geodesic")):
        if a in lengths:
            out[f"{a}_vs_{b}"] = float((lengths[a] / lengths[b].clamp_min(1e-12)).mean())
    save_image_grid(ctx.run.figure_path("interp_geodesic.png"), torch.stack(strips, 1).flatten(0, 2), nrow=steps)
    caption = "per pair, one row each: " + ", ".join(curves) + " (energy-minimising curve under the decoder"
    caption += "; learned: an interpolation network trained on pairs of training codes)" if "learned" in curves else ")"
    return out, {"interp_geodesic.png": caption}


def _lengths(ctx, curves: torch.Tensor, steps: int) -> torch.Tensor:
    """Decoded path length of each curve (B, T, d). -> (B,) float64."""
    frames = ctx.decode(curves.reshape(-1, curves.shape[2])).reshape(curves.shape[0], steps, -1)
    return quality.step_sizes(frames).sum(dim=1)
