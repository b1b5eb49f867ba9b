"""``reprojection``: does re-projection (z <- encode(decode(z))) exaggerate features, and where does it converge?

From ``n_codes`` test codes z_0 (a random subset per seed) the chain z_{t+1} = encode(decode(z_t)) runs for
``steps`` steps (:func:`latentatlas.latent.geometry.reprojection_drift`, the geometry stage's drift measure).
Per step t: the drift ||z_t - z_0|| and the step ||z_t - z_{t-1}|| in units of the code scale (RMS distance
of z_0 from its mean), the RMS pixel change between decode(z_t) and decode(z_{t-1}), the classifier's
confidence and the fraction of images whose predicted class differs from step 0's, and the Fréchet
distance, precision and recall of decode(z_t) against the real evaluation images.

Cells are (seed, step).  A step's measures (decoding, features, scores: the costly part) are stored when it
ends; the chain of codes is T decode-encode passes, cheap and deterministic, so it is recomputed in memory
for each seed when a study resumes.  So no finished step is measured twice, and raising ``steps`` only adds
the new steps (the chain's first steps do not depend on its length).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentatlas.latent.geometry import reprojection_drift
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies.base import Study, StudySettings, best, mean_sd, register, summarise
from latentatlas.studies.plots import panel_plot
from latentatlas.validate import rule

SCORES = ("frechet", "precision", "recall", "confidence", "nn_train_ratio", "copy_fraction")   # of the Judge
VALUES = ("drift", "step_size", "pixel_change", "confidence", "flipped", "accuracy", "frechet", "precision",
          "recall", "nn_train_ratio", "copy_fraction")


@dataclass(frozen=True)
class ReprojectionSettings(StudySettings):
    grid = ("seeds", "steps")
    seeds: int = field(default=2, metadata=rule(low=1))        # random subsets of test codes (error bars)
    steps: int = field(default=30, metadata=rule(low=1))       # decode-encode steps T per chain
    n_codes: int = field(default=2000, metadata=rule(low=2))   # test codes per chain (all when fewer)
    tol: float = field(default=0.01, metadata=rule(low=0, strict=True))  # converged: step < tol * code scale


@register
class Reprojection(Study):
    name = "reprojection"
    question = ("Does repeated re-projection z <- encode(decode(z)) exaggerate features (rising classifier "
                "confidence, flipped classes), does it converge to a fixed point, and are the images there "
                "better or worse?")
    Settings = ReprojectionSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        return [{"seed": s, "step": t} for s in range(self.settings.seeds) for t in range(self.settings.steps + 1)]

    def chain(self, ctx, seed: int) -> dict[str, Any]:
        """The chain of one seed, made once per context: 'codes' (T + 1, n, d), 'step' and 'from_start' (T,)
        mean code distances, 'scale' (the RMS distance of z_0 from its mean) and 'rows' (n,) test rows."""
        key = (self.name, "chain", seed, self.settings.n_codes, self.settings.steps)
        if key not in ctx.cache:
            test = ctx.codes("test")
            g = ctx.generator(self.name, seed, "codes")
            rows = torch.randperm(test.shape[0], generator=g)[:self.settings.n_codes]
            z0 = test[rows]
            drift = reprojection_drift(ctx.encode, ctx.decode, z0, n_iter=self.settings.steps)
            scale = float((z0.double() - z0.double().mean(0)).pow(2).sum(1).mean().sqrt())
            ctx.cache[key] = {**drift, "codes": torch.from_numpy(drift["codes"]).to(z0.dtype), "rows": rows,
                              "scale": max(scale, 1e-12)}
        return ctx.cache[key]

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, float]:
        seed, t = cell["seed"], cell["step"]
        chain, decoded = self.chain(ctx, seed), self._decoded(ctx, seed, t)
        x = decoded[t]
        feats, logits = ctx.judge.embed(x)
        scores = ctx.judge.score_features(feats, logits)
        out = {"n_codes": int(x.shape[0]), "drift": float(chain["from_start"][t - 1]) / chain["scale"] if t else 0.0,
               **{k: scores[k] for k in SCORES if k in scores}}
        if t:
            out["step_size"] = float(chain["step"][t - 1]) / chain["scale"]
            out["pixel_change"] = float((x - decoded[t - 1]).flatten(1).double().pow(2).mean(1).sqrt().mean())
        if logits is not None:
            predicted = logits.argmax(1).cpu()
            out["flipped"] = float((predicted != self._classes_at_start(ctx, seed, predicted if t == 0 else None))
                                   .double().mean())
            labels = ctx.labels("test")
            if labels is not None:
                truth = torch.as_tensor(np.asarray(labels)[chain["rows"].numpy()])
                out["accuracy"] = float((predicted == truth).double().mean())
        return out

    def _decoded(self, ctx, seed: int, t: int) -> dict[int, torch.Tensor]:
        """{step: decode(z_step)} for steps t and t - 1 of a seed's chain; kept for the next cell, which needs
        step t again."""
        key, codes = (self.name, "decoded", seed, self.settings.n_codes), self.chain(ctx, seed)["codes"]
        kept = ctx.cache.get(key, {})
        ctx.cache[key] = {s: kept[s] if s in kept else ctx.decode(codes[s]) for s in (t, t - 1) if s >= 0}
        return ctx.cache[key]

    def _classes_at_start(self, ctx, seed: int, predicted: torch.Tensor | None) -> torch.Tensor:
        """Predicted classes (n,) of decode(z_0) of a seed's chain (made once; ``predicted`` at step 0)."""
        key = (self.name, "classes0", seed, self.settings.n_codes)
        if key not in ctx.cache:
            if predicted is None:
                predicted = ctx.judge.embed(ctx.decode(self.chain(ctx, seed)["codes"][0]))[1].argmax(1).cpu()
            ctx.cache[key] = predicted
        return ctx.cache[key]

    # ---------------------------------------------------------------------------------------- outputs
    def summary(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return summarise(rows, ("step",), tuple(v for v in VALUES if any(v in r for r in rows)))

    def convergence(self, summary: list[dict[str, Any]]) -> dict[str, Any]:
        """'first', 'last' (rows of steps 1 and T), 'rate' (geometric mean ratio of successive steps) and
        'converged_at' (the first step whose mean step size is below ``tol``, or None)."""
        moves = [r for r in summary if r["step"] >= 1 and r.get("step_size") is not None]
        first, last = moves[0], moves[-1]
        span = last["step"] - first["step"]
        rate = (last["step_size"] / first["step_size"]) ** (1 / span) if span and first["step_size"] > 0 else \
            float("nan")
        below = [r["step"] for r in moves if r["step_size"] < self.settings.tol]
        return {"first": first, "last": last, "rate": rate, "converged_at": below[0] if below else None}

    def table(self, rows: list[dict[str, Any]]) -> Table:
        summary = self.summary(rows)
        header = ["step", "drift ||z_t - z_0||", "step ||z_t - z_t-1||", "pixel change", "confidence",
                  "class flipped", "accuracy", "Fréchet distance", "precision", "recall", "NN-train ratio",
                  "copy fraction"]
        body = [[r["step"], *(mean_sd(r, k) if r.get(k) is not None else "" for k in VALUES)] for r in summary]
        s, n = self.settings, _n_codes(rows)
        notes = [f"chains z_t+1 = encode(decode(z_t)) from {n} test codes per seed (a random subset each), "
                 f"{s.steps} steps; mean ± sd over {s.seeds} seed(s). Code distances in units of the code scale "
                 "(RMS distance of z_0 from its mean); pixel change: RMS per-pixel difference of successive "
                 "decodings; confidence: mean top class probability of the evaluation classifier; class "
                 "flipped: share of images whose predicted class differs from step 0's; accuracy: predicted "
                 "class = the test image's label; Fréchet distance, precision, recall of decode(z_t) against "
                 f"{s.n_real} (at most) real evaluation images; NN-train ratio: median feature distance to the "
                 "nearest training image, decodings over held-out images (below 1: nearer the training set); copy "
                 "fraction: share nearer a training image than 95% of held-out images are. Step 0 is decode(z_0), "
                 "the reconstructions."]
        return Table(header, body, notes, title="Repeated decode-encode: drift, confidence and quality per step")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        summary = self.summary(rows)
        at = self.convergence(summary)["converged_at"]
        classifier = [k for k in ("confidence", "flipped", "accuracy") if any(r.get(k) is not None for r in summary)]
        panels = [("code distance / code scale", ["drift", "step_size"]), ("RMS pixel change", ["pixel_change"]),
                  *([("classifier", classifier)] if classifier else []), ("Fréchet distance", ["frechet"])]
        panel_plot(folder / "reprojection.png", summary, "step", panels, xlabel="decode-encode step",
                   marks={f"step < {self.settings.tol} at t={at}": at} if at is not None else None)
        return {"reprojection.png": "per decode-encode step (mean ± sd over seeds): drift from the start and step "
                                    "size in code-scale units, RMS pixel change between successive decodings, "
                                    "classifier confidence / share of flipped classes / accuracy, and Fréchet "
                                    "distance to real images; dashed: the first step below the tolerance"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        summary = self.summary(rows)
        c, start, end = self.convergence(summary), summary[0], summary[-1]
        first, last, tol = c["first"], c["last"], self.settings.tol
        moves = (f"from {fmt_number(first['step_size'])} at step {first['step']} to {fmt_number(last['step_size'])} "
                 f"at step {last['step']} (x{fmt_number(c['rate'])} per step)")
        if c["converged_at"] is not None:
            out = [f"The chain converges: the step size (code-scale units) falls {moves} and is below {tol} from "
                   f"step {c['converged_at']}; the codes settle {fmt_number(end['drift'])} code scales from their "
                   "start."]
        elif last["step_size"] < first["step_size"]:
            out = [f"The step size shrinks {moves} but stays above {tol} after {last['step']} steps: no fixed point "
                   f"yet, {fmt_number(end['drift'])} code scales from the start."]
        else:
            out = [f"The step size does not shrink: {moves}; the codes drift {fmt_number(end['drift'])} code scales."]
        if start.get("confidence") is not None:
            peak = best(summary, "confidence", lowest=False)
            change = end["confidence"] - start["confidence"]
            spread = start["confidence_sd"] + end["confidence_sd"]
            verdict = "is unchanged within the seed-to-seed spread" if abs(change) <= spread else \
                "rises: re-projection exaggerates class features" if change > 0 else \
                "falls: re-projection blurs class features"
            out.append(f"Classifier confidence {verdict} ({fmt_number(start['confidence'])} at step 0, "
                       f"{fmt_number(end['confidence'])} at step {end['step']}, highest "
                       f"{fmt_number(peak['confidence'])} at step {peak['step']}).")
            flips = f"{fmt_number(100 * end['flipped'], 3)}% of the images changed predicted class by step " \
                f"{end['step']}"
            if end.get("accuracy") is not None:
                flips += (f"; agreement with the true labels {fmt_number(start['accuracy'])} at step 0, "
                          f"{fmt_number(end['accuracy'])} at step {end['step']}")
            out.append(flips + ".")
        top = best(summary, "frechet")
        trend = "improves" if end["frechet"] < start["frechet"] else "worsens" if end["frechet"] > start["frechet"] \
            else "is unchanged"
        out.append(f"Image quality {trend} along the chain: Fréchet distance {fmt_number(start['frechet'])} at step 0 "
                   f"(reconstructions), {fmt_number(end['frechet'])} at step {end['step']}, lowest "
                   f"{fmt_number(top['frechet'])} at step {top['step']}.")
        if start.get("nn_train_ratio") is not None:
            nearer = "nearer to" if end["nn_train_ratio"] < start["nn_train_ratio"] else "no nearer to"
            out.append(f"The chain ends {nearer} the training images: NN-train ratio "
                       f"{fmt_number(start['nn_train_ratio'])} at step 0, {fmt_number(end['nn_train_ratio'])} at step "
                       f"{end['step']}; copy fraction {fmt_number(start['copy_fraction'])} -> "
                       f"{fmt_number(end['copy_fraction'])}.")
        return out


def _n_codes(rows: list[dict[str, Any]]) -> str:
    counts = {r["n_codes"] for r in rows if "n_codes" in r}
    return "/".join(str(int(c)) for c in sorted(counts)) or "?"
