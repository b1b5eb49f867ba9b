"""``interpolation``: which way between two codes gives the best images, and are the optimised paths shorter?

For each run and method, paths of ``steps`` frames between the same ``n_pairs`` random pairs of test codes:
straight (lerp), spherical (slerp), normalised (norm), the optimised geodesic
(:func:`~latentatlas.latent.geodesic.geodesic_paths`), a learned interpolation network trained on pairs of
training codes (:func:`~latentatlas.latent.geodesic.learned_paths`) and iterated interpolation (the diagonal
of the grid between the pair and two more random test codes, :func:`~latentatlas.latent.interpolate.iterated_paths`).
Per path set: Fréchet distance of the decoded midpoints to real images (and, for scale, of the decoded start
codes: same count), realism of every frame (:meth:`Judge.realism` >= 1: inside the real k-NN manifold),
smoothness (:func:`~latentatlas.metrics.interpolation.smoothness`) and the pixel-space path length, also per
pair relative to the straight line.  Several runs give one table, written into the first run's folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from latentatlas.latent import geodesic
from latentatlas.latent import interpolate as interp
from latentatlas.metrics import interpolation as quality
from latentatlas.metrics.features import features_to_stats
from latentatlas.metrics.frechet import FrechetReference, frechet
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies.base import Study, StudySettings, best, register
from latentatlas.studies.plots import panel_plot
from latentatlas.validate import rule

PATHS = ("geodesic", "learned", "iterated")        # methods beyond the registered interpolators
VALUES = ("midpoint_fd", "endpoint_fd", "inside", "inside_mid", "step_cv", "path_length", "length_vs_lerp", "seconds")


@dataclass(frozen=True)
class InterpolationSettings(StudySettings):
    grid = ("methods",)
    methods: tuple[str, ...] = field(default=("lerp", "slerp", "norm", "geodesic", "learned", "iterated"),
                                     metadata=rule(choices=(*interp.INTERPOLATORS.names(), *PATHS), nonempty=True))
    n_pairs: int = field(default=128, metadata=rule(low=2))       # pairs of test codes per run
    steps: int = field(default=9, metadata=rule(low=3))           # frames per path, odd: the middle one is t=0.5
    geodesic_iters: int = field(default=100, metadata=rule(low=0))
    geodesic_lr: float = field(default=5e-2, metadata=rule(low=0, strict=True))
    learned_iters: int = field(default=500, metadata=rule(low=0))
    iterated_base: str = field(default="slerp", metadata=rule(choices=tuple(interp.INTERPOLATORS.names())))

    def check(self) -> None:
        if self.steps % 2 == 0:
            raise ValueError(f"interpolation.steps: expected an odd number (the middle frame is the midpoint), "
                             f"got {self.steps}")


@register
class Interpolation(Study):
    name = "interpolation"
    question = ("Which interpolation between two codes (straight, spherical, geodesic, learned, iterated) gives the "
                "most realistic in-between images, and are geodesic and learned paths shorter than straight ones?")
    Settings = InterpolationSettings
    multi_run = True

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        return [{"run": r, "method": m} for r in runs for m in dict.fromkeys(self.settings.methods)]

    def pairs(self, ctx) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's pairs of test codes z0, z1 (B, d), the same for every method."""
        key = (self.name, "pairs", self.settings.n_pairs)
        if key not in ctx.cache:
            test = ctx.codes("test")
            i = interp.random_pairs(test.shape[0], self.settings.n_pairs, generator=ctx.generator(self.name, "pairs"))
            ctx.cache[key] = (test[i[:, 0]], test[i[:, 1]])
        return ctx.cache[key]

    def paths(self, ctx, method: str, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """Codes along the paths of ``method`` from z0 to z1 (B, d). -> (B, steps, d) on the CPU."""
        s, t = self.settings, interp.steps(self.settings.steps, dtype=z0.dtype)
        if method in interp.INTERPOLATORS.names():
            return interp.interpolate(method, z0, z1, t)
        if method == "iterated":
            test = ctx.codes("test")
            via = torch.randint(0, test.shape[0], (2, z0.shape[0]), generator=ctx.generator(self.name, "via"))
            return interp.iterated_paths(z0, z1, test[via[0]], test[via[1]], t, method=s.iterated_base)
        decode, device = _differentiable_decoder(ctx)
        if method == "geodesic":
            return geodesic.geodesic_paths(decode, z0.to(device), z1.to(device), n_points=s.steps,
                                           iters=s.geodesic_iters, lr=s.geodesic_lr).cpu()
        train = ctx.codes("train").to(device)
        return geodesic.learned_paths(decode, train, z0.to(device), z1.to(device), t.to(device),
                                      iters=s.learned_iters, generator=ctx.generator(self.name, "learned")).cpu()

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, Any]:
        z0, z1 = self.pairs(ctx)
        start = time.perf_counter()
        curves = self.paths(ctx, cell["method"], z0, z1)
        seconds = time.perf_counter() - start
        frames = _decode_paths(ctx, curves)
        lengths = quality.step_sizes(frames).sum(dim=1)
        return {**self.measure(ctx, frames), **quality.smoothness(frames), "seconds": seconds,
                "length_vs_lerp": float((lengths / self.straight_lengths(ctx).clamp_min(1e-12)).mean())}

    def straight_lengths(self, ctx) -> torch.Tensor:
        """Decoded length (B,) of the straight path of each pair (made once per run)."""
        key = (self.name, "straight", self.settings.n_pairs, self.settings.steps)
        if key not in ctx.cache:
            z0, z1 = self.pairs(ctx)
            frames = _decode_paths(ctx, interp.lerp(z0, z1, interp.steps(self.settings.steps, dtype=z0.dtype)))
            ctx.cache[key] = quality.step_sizes(frames).sum(dim=1)
        return ctx.cache[key]

    def measure(self, ctx, frames: torch.Tensor) -> dict[str, Any]:
        """Scores of decoded paths (B, T, ...): midpoint and start-frame Fréchet distances, the share of frames
        inside the real manifold (all frames, the middle one, and per position as a list)."""
        b, n = frames.shape[:2]
        feats = ctx.judge.embed(frames.flatten(0, 1))[0].reshape(b, n, -1)
        inside = (ctx.judge.realism(feats.flatten(0, 1)) >= 1).reshape(b, n).double()

        if (self.name, "real") not in ctx.cache:                   # the real covariance, factored once per run
            ctx.cache[self.name, "real"] = FrechetReference(ctx.judge.real_stats)
        real = ctx.cache[self.name, "real"]

        def fd(f: torch.Tensor) -> float:
            return float(frechet(real, features_to_stats(f)))

        return {"midpoint_fd": fd(feats[:, n // 2]), "endpoint_fd": fd(feats[:, 0]), "inside": float(inside.mean()),
                "inside_mid": float(inside[:, n // 2].mean()), "inside_curve": inside.mean(0).tolist()}

    # ---------------------------------------------------------------------------------------- outputs
    def table(self, rows: list[dict[str, Any]]) -> Table:
        header = ["run", "method", "midpoint FD", "start-frame FD", "frames inside", "midpoints inside", "step cv",
                  "path length", "length / straight", "seconds"]
        body = [[r["run"], r["method"], *(r.get(k) for k in VALUES)] for r in rows]
        s = self.settings
        notes = [f"per run: {s.n_pairs} random pairs of test codes, {s.steps} frames per path, the same pairs for "
                 f"every method; geodesic: {s.geodesic_iters} Adam steps (lr {s.geodesic_lr}) on the decoded path "
                 f"energy; learned: an interpolation network trained {s.learned_iters} steps on pairs of training "
                 f"codes; iterated: the diagonal of the {s.iterated_base} grid between the pair and two random test "
                 "codes. FD: Fréchet distance to the real evaluation images of the decoded midpoints and (for scale, "
                 "same count) of the decoded start codes; inside: share of frames whose realism score (Kynkäänniemi "
                 "et al. 2019, k=3) is >= 1; step cv: coefficient of variation of the pixel-space step sizes (0: "
                 "constant speed); path length: sum of pixel-space L2 steps; length / straight: mean per-pair ratio "
                 "to the straight path; seconds: making the paths (training included)"]
        return Table(header, body, notes, title="Interpolation methods: midpoint quality, realism, smoothness, length")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        import matplotlib

        with matplotlib.rc_context({"xtick.labelsize": 7}):     # six method names side by side on the x axis
            panel_plot(folder / "interpolation.png", rows, "method", [
                ("midpoint Fréchet distance", ["midpoint_fd"]), ("share of frames inside", ["inside"]),
                ("step cv", ["step_cv"]), ("path length / straight", ["length_vs_lerp"])], xlabel="method",
                series="run")
        runs = list(dict.fromkeys(r["run"] for r in rows))
        curves = [{"t": i / (len(r["inside_curve"]) - 1), "method": r["method"], f"inside {r['run']}": v}
                  for r in rows for i, v in enumerate(r.get("inside_curve") or [])]
        panel_plot(folder / "interpolation_realism.png", curves, "t",
                   [(f"{run}: share of frames inside", [f"inside {run}"]) for run in runs],
                   xlabel="position t along the path", series="method")
        return {"interpolation.png": "per method (one line per run): Fréchet distance of decoded midpoints, share of "
                                     "frames inside the real manifold, step-size cv, and path length relative to "
                                     "the straight path (mean per-pair ratio)",
                "interpolation_realism.png": "share of decoded frames inside the real manifold at each position "
                                             "along the path, one panel per run, one line per method"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        out = []
        for run in dict.fromkeys(r["run"] for r in rows):
            mine = {r["method"]: r for r in rows if r["run"] == run}
            by_fd, shortest = best(list(mine.values()), "midpoint_fd"), best(list(mine.values()), "path_length")
            line = (f"{run}: the best midpoints come from {by_fd['method']} (Fréchet distance "
                    f"{fmt_number(by_fd['midpoint_fd'])}")
            if "lerp" in mine and by_fd["method"] != "lerp":
                line += f"; straight {fmt_number(mine['lerp']['midpoint_fd'])}"
            line += (f"; start frames {fmt_number(by_fd['endpoint_fd'])}); the shortest paths from {shortest['method']}"
                     f" (pixel length {fmt_number(shortest['path_length'])}, x{fmt_number(shortest['length_vs_lerp'])}"
                     " of straight).")
            out.append(line)
            ratios = [f"{m} paths are {_shorter(mine[m]['length_vs_lerp'])} than straight ones (length ratio "
                      f"{fmt_number(mine[m]['length_vs_lerp'], 4)})" for m in ("geodesic", "learned") if m in mine]
            if ratios:
                out.append(f"{run}: " + "; ".join(ratios) + ".")
        return out


def _shorter(ratio: float) -> str:
    return "shorter" if ratio < 1 else "longer" if ratio > 1 else "as long"


def _decode_paths(ctx, curves: torch.Tensor) -> torch.Tensor:
    """Codes along paths (B, T, d) -> decoded frames (B, T, ...)."""
    images = ctx.decode(curves.reshape(-1, curves.shape[2]))
    return images.reshape(curves.shape[0], curves.shape[1], *images.shape[1:])


def _differentiable_decoder(ctx) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.device | str]:
    """A decoder codes (n, d) -> outputs (n, D) that gradients flow through (the run's frozen model on its
    device; a context built from arrays must have a differentiable ``decode``), and the device for codes."""
    if ctx.session is None:
        return (lambda z: ctx.decode(z).reshape(z.shape[0], -1)), "cpu"
    model, device = ctx.session.model.requires_grad_(False), ctx.session.device
    if getattr(model, "code_kind", "continuous") != "continuous" or getattr(model, "conditional", False):
        raise ValueError(f"interpolation: {ctx.name} has discrete codes or a class-conditional decoder; geodesic "
                         "and learned paths need a decoder of code vectors alone")
    return (lambda z: model.decode(z.to(device)).reshape(z.shape[0], -1)), device
