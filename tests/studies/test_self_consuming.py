"""self-consuming: the loop on a 1-D Gaussian against closed forms (fully synthetic: E[sigma_t^2] = sigma_0^2
((n-1)/n)^t; fresh data and a fixed real set: their exact expected variance, near sigma_0^2; sampling bias
shrinks faster), resuming after the last finished generation, and a tiny image run through the CLI whose
findings agree with its table."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from latentatlas.rng import derive_seed, make_generator
from latentatlas.studies import load_settings
from latentatlas.studies.self_consuming_loop import GenerationStore, LoopSpec, RealData, run_loop

SIGMA2 = 2.0     # variance of the real data (and of generation 0)


class Gaussian:
    """N(mean, var) in 1-D: fit = maximum-likelihood mean and variance (ddof 0); realism = log density."""

    fits = 0

    def __init__(self, mean: float, var: float) -> None:
        self.mean, self.var = mean, var

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.mean + math.sqrt(self.var) * torch.randn(n, generator=generator, dtype=torch.float64)

    def realism(self, x: torch.Tensor) -> torch.Tensor:
        return -(x - self.mean) ** 2 / (2 * self.var)

    def fit(self, data: torch.Tensor, generator: torch.Generator) -> "Gaussian":
        Gaussian.fits += 1
        return Gaussian(float(data.mean()), float(data.var(unbiased=False)))

    def state(self) -> dict:
        return {"mean": self.mean, "var": self.var}

    def restore(self, state: dict) -> "Gaussian":
        return Gaussian(state["mean"], state["var"])


def real_data(n_real: int, generator: torch.Generator) -> RealData:
    """A fixed real set with mean exactly 0 and variance exactly SIGMA2, and fresh N(0, SIGMA2) draws."""
    fresh = lambda m, g: math.sqrt(SIGMA2) * torch.randn(m, generator=g, dtype=torch.float64)   # noqa: E731
    if n_real == 0:
        return RealData(None, fresh)
    x = torch.randn(n_real, generator=generator, dtype=torch.float64)
    fixed = (x - x.mean()) / x.std(unbiased=False) * math.sqrt(SIGMA2)
    return RealData(fixed, fresh)


def variances(loop: str, *, lam: float = 1.0, n: int = 10, generations: int = 8, repeats: int = 3000) -> np.ndarray:
    """(repeats, generations + 1) variances of the generations of independent loops from N(0, SIGMA2)."""
    out = np.empty((repeats, generations + 1))
    spec = LoopSpec(loop, lam, generations, n, real_fraction=0.5, n_eval=1)
    for r in range(repeats):
        g = make_generator(derive_seed(0, loop, str(lam), r))
        rows = run_loop(Gaussian(0.0, SIGMA2), spec, real_data(spec.n_real, g), lambda t, what: g,
                        lambda model, x: {"variance": model.var})
        out[r] = [row["variance"] for row in rows]
    return out


def expected_variance(n: int, n_real: int, generations: int, *, fixed: bool) -> np.ndarray:
    """E[sigma_t^2] of the loop that trains on n_real real points (a fixed set of mean 0 and variance SIGMA2,
    or fresh N(0, SIGMA2) draws) and n - n_real samples of the last generation: an exact linear recursion in
    (E[sigma^2], E[mu^2]) from the pooled sum of squares SS = SS_real + SS_syn + n_r n_s / n (mean gap)^2."""
    n_s, a, b, out = n - n_real, SIGMA2, 0.0, [SIGMA2]
    for _ in range(generations):
        real_ss = n_real * SIGMA2 if fixed else (n_real - 1 + n_s / n) * SIGMA2
        a, b = ((real_ss + (n_s - 1 + n_real / n) * a + n_real * n_s / n * b) / n,
                (n_s / n) ** 2 * (b + a / n_s) + (0 if fixed else n_real * SIGMA2 / n ** 2))
        out.append(a)
    return np.array(out)


def within_standard_errors(sim: np.ndarray, expected: np.ndarray, z: float = 4.0) -> None:
    mean, se = sim.mean(0), sim.std(0, ddof=1) / math.sqrt(sim.shape[0])
    assert np.all(np.abs(mean - expected) <= z * se + 1e-12), (mean, expected, se)


@pytest.fixture(scope="module")
def unbiased():
    return variances("fully-synthetic")


def test_fully_synthetic_variance_shrinks_as_the_closed_form_predicts(unbiased):
    n, t = 10, np.arange(unbiased.shape[1])
    within_standard_errors(unbiased, SIGMA2 * ((n - 1) / n) ** t)
    assert unbiased.mean(0)[-1] < 0.5 * SIGMA2          # 0.9^8 = 0.43 of sigma_0^2 after 8 generations


@pytest.mark.parametrize("loop, fixed", [("fresh-data", False), ("synthetic-augmentation", True)])
def test_real_data_keeps_the_variance_near_sigma0(loop, fixed, unbiased):
    sim = variances(loop, repeats=2000)
    expected = expected_variance(10, 5, 8, fixed=fixed)
    within_standard_errors(sim, expected)
    assert abs(expected[-1] / SIGMA2 - 1) < 0.15 and sim.mean(0)[-1] > 1.8 * unbiased.mean(0)[-1]


def test_sampling_bias_shrinks_the_variance_faster(unbiased):
    biased = variances("fully-synthetic", lam=0.5, repeats=1000)
    gap = unbiased.mean(0)[1:] - biased.mean(0)[1:]
    se = np.sqrt(unbiased.var(0, ddof=1)[1:] / unbiased.shape[0] + biased.var(0, ddof=1)[1:] / biased.shape[0])
    assert np.all(gap > 4 * se)
    assert biased.mean(0)[1] < 0.6 * SIGMA2     # keeping the central half of 2n draws: ~0.3 sigma^2 at once


def test_a_killed_loop_resumes_after_its_last_finished_generation(tmp_path):
    spec = LoopSpec("fresh-data", 1.0, generations=6, n=10)
    g = lambda t, what: make_generator(derive_seed(1, t, what))   # noqa: E731
    real = real_data(spec.n_real, make_generator(2))
    measure = lambda model, x: {"variance": model.var, "mean": model.mean}   # noqa: E731
    whole = run_loop(Gaussian(0.0, SIGMA2), spec, real, g, measure)

    def dies_at_4(model, x):
        if dies_at_4.calls == 4:
            raise KeyboardInterrupt
        dies_at_4.calls += 1
        return measure(model, x)
    dies_at_4.calls = 0
    store = GenerationStore(tmp_path, key="a")
    with pytest.raises(KeyboardInterrupt):
        run_loop(Gaussian(0.0, SIGMA2), spec, real, g, dies_at_4, store=store)
    Gaussian.fits = 0
    assert run_loop(Gaussian(0.0, SIGMA2), spec, real, g, measure, store=store) == whole
    assert Gaussian.fits == 3               # generations 4, 5, 6; 0-3 came from the store
    Gaussian.fits = 0
    assert run_loop(Gaussian(0.0, SIGMA2), spec, real, g, measure, store=GenerationStore(tmp_path, "b")) == whole
    assert Gaussian.fits == 6               # another key: the store is not used
    store.path.write_bytes(b"damaged")
    assert run_loop(Gaussian(0.0, SIGMA2), spec, real, g, measure, store=store) == whole


@pytest.mark.parametrize("override, message", [
    ("loops=[fully-synthetic,forever]", "self-consuming.loops: expected one of"),
    ("lambdas=[0]", "self-consuming.lambdas: expected a finite number in (0, 1], got 0"),
    ("lambdas=[1.5]", "self-consuming.lambdas: expected a finite number in (0, 1], got 1.5"),
    ("real_fraction=1", "self-consuming.real_fraction: expected a share in (0, 1)"),
    ("bias=oracle", "self-consuming.bias: expected one of"),
])
def test_bad_settings_are_one_clear_error(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings("self-consuming", overrides=[override])


def test_an_image_generation_checkpoint_restores_the_same_model(tmp_path):
    """What a resumed image loop continues from: the autoencoder weights and the GMM of a generation."""
    from latentatlas.config import TrainConfig, model_config_from_dict
    from latentatlas.models import build_model
    from latentatlas.studies.self_consuming_loop import LatentPipeline, Recipe

    ae = build_model(model_config_from_dict({"family": "ae", "latent_dim": 3, "width": 8}, "model"), (1, 28, 28), None)
    images = torch.rand(64, 1, 28, 28, generator=make_generator(0))
    recipe = Recipe(TrainConfig(epochs=1, progress=False), tmp_path, {"k": 2})
    model = LatentPipeline.on_images(ae, images, recipe, make_generator(1))
    store = GenerationStore(tmp_path, key="k")
    store.save(3, model.state(), [{"frechet": 1.0}])
    t, state, rows = store.load()
    again = model.restore(state)
    assert (t, rows) == (3, [{"frechet": 1.0}])
    assert torch.equal(again.sample(8, make_generator(2)), model.sample(8, make_generator(2)))
    assert torch.allclose(again.realism(images), model.realism(images))


# ------------------------------------------------------------------------------ findings on known curves
def curve_rows(curves: dict) -> list[dict]:
    """Rows as run_cell gives them, from {(loop, lambda): (FD list, precision list, recall list)}."""
    return [{"loop": loop, "lambda": lam, "seed": 0, "frechet": fd, "precision": p, "recall": r,
             "coverage": [0.5] * len(fd)} for (loop, lam), (fd, p, r) in curves.items()]


def test_findings_name_mad_and_its_cure_when_the_curves_show_them():
    from latentatlas.studies.self_consuming import SelfConsuming

    flat = [0.7, 0.7, 0.7]
    rows = curve_rows({("fully-synthetic", 1.0): ([20.0, 30.0, 40.0], flat, [0.5, 0.4, 0.3]),
                       ("fully-synthetic", 0.5): ([18.0, 25.0, 30.0], [0.8, 0.8, 0.8], [0.45, 0.3, 0.1]),
                       ("fresh-data", 1.0): ([20.0, 20.4, 20.2], flat, [0.5, 0.5, 0.49])})
    found = SelfConsuming(load_settings("self-consuming")).findings(rows)
    assert found[0].startswith("fully-synthetic, λ=1, generation 0 -> 2: Fréchet distance 20 -> 40 (+100%)")
    assert "quality degrades, diversity degrades" in found[0] and "quality holds, diversity holds" in found[2]
    assert "λ=1: fresh data stops the degradation" in found[3]
    assert "with λ=0.5 recall 0.45 -> 0.1 (-78%) vs 0.5 -> 0.3 (-40%) at λ=1" in found[4]
    assert "diversity is lost faster with bias" in found[4]
    assert ": reproduced at λ=1 " in found[-1]


def test_findings_say_not_reproduced_when_fresh_data_degrades_as_much():
    from latentatlas.studies.self_consuming import SelfConsuming

    flat = [0.7, 0.7, 0.7]
    rows = curve_rows({("fully-synthetic", 1.0): ([20.0, 30.0, 40.0], flat, [0.5, 0.4, 0.3]),
                       ("fresh-data", 1.0): ([20.0, 28.0, 36.0], flat, [0.5, 0.45, 0.4])})
    found = SelfConsuming(load_settings("self-consuming")).findings(rows)
    assert "λ=1: fresh data does not stop the degradation" in found[2]
    assert ": not reproduced at λ=1 " in found[-1]


# ------------------------------------------------------------------------------------ a tiny image run
TINY_AE = {"name": "tiny-ae", "seed": 0, "data": {"name": "mnist", "limit": 600},
           "model": {"family": "ae", "latent_dim": 4, "width": 16},
           "train": {"epochs": 6, "batch_size": 64, "progress": False},
           "sample": {"samplers": ["gmm:k=2"], "n": 64}, "evaluate": {"metrics": ["frechet"], "n_real": 1000}}
STUDY = ["loops=[fully-synthetic,fresh-data,interpolation]", "lambdas=[0.5]", "generations=2", "n_images=128",
         "n_eval=100", "epochs=1", "gmm_k=2", "n_realism_reference=300"]


@pytest.fixture(scope="module")
def study(tmp_path_factory, run_maker):
    """A 6-epoch AE on 600 digits made by `latentatlas run`, then the study through `latentatlas study`."""
    from latentatlas.cli import main

    run = run_maker(tmp_path_factory.mktemp("runs"), TINY_AE)
    before = {p.relative_to(run): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    main(["study", "self-consuming", str(run)] + [a for s in STUDY for a in ("--set", s)])
    return run, run / "studies" / "self-consuming", before


def test_outputs_have_one_value_per_generation_and_cell(study):
    run, folder, before = study
    out = json.loads((folder / "study.json").read_text())
    cells = [json.loads(line) for line in (folder / "cells.jsonl").read_text().splitlines()]
    assert [(c["cell"]["loop"], c["cell"]["lambda"]) for c in cells] == [
        (loop, 0.5) for loop in ("fully-synthetic", "fresh-data", "interpolation")]
    for c in cells:
        assert {k: len(v) for k, v in c["values"].items() if k in ("frechet", "precision", "recall")} == \
            {"frechet": 3, "precision": 3, "recall": 3}
        assert (c["cell"]["loop"] == "interpolation") == ("interp_precision" in c["values"])
        assert (folder / f"samples-{c['cell']['loop']}-lam{c['cell']['lambda']:g}-seed0.png").is_file()
    assert len(out["table"]["rows"]) == 3 * 3 and (folder / "self-consuming.png").is_file()
    # the trained generations live inside the study folder; nothing else in the run changed but its report
    # (report.html and the figures it redraws)
    assert (folder / "cells" / "fully-synthetic-lam0.5-seed0" / "latest.pt").is_file()
    changed = {p for p, t in before.items() if (run / p).stat().st_mtime_ns != t}
    added = {p.relative_to(run) for p in run.rglob("*") if p.is_file()} - set(before)
    assert all(str(p) == "report.html" or p.parts[0] == "figures" for p in changed)
    assert all(p.parts[:2] == ("studies", "self-consuming") for p in added)


def test_findings_agree_with_the_table(study):
    _, folder, _ = study
    out = json.loads((folder / "study.json").read_text())
    header, rows = out["table"]["header"], out["table"]["rows"]
    names = ("loop", "λ", "generation", "Fréchet distance", "precision", "recall")
    col = {name: header.index(name) for name in names}
    table = {(r[col["loop"]], float(r[col["λ"]]), int(r[col["generation"]])): r for r in rows}
    threshold, size = 0.05, {}
    for line in out["findings"]:
        m = re.match(r"(\S+), λ=([\d.]+), generation 0 -> (\d+): Fréchet distance (\S+) -> (\S+) "
                     r".*precision (\S+) -> (\S+) .*recall (\S+) -> (\S+) .*: quality (\w+), diversity (\w+)", line)
        if not m:
            continue
        loop, lam, last = m[1], float(m[2]), int(m[3])
        first_row, last_row = table[(loop, lam, 0)], table[(loop, lam, last)]
        fd0, fd1, p0, p1, r0, r1 = (float(x.replace(",", "")) for x in m.groups()[3:9])
        for name, pair in (("Fréchet distance", (fd0, fd1)), ("precision", (p0, p1)), ("recall", (r0, r1))):
            assert pair == pytest.approx((float(first_row[col[name]]), float(last_row[col[name]])), rel=5e-3)
        quality = fd1 - fd0 > threshold * fd0 or p0 - p1 > threshold * p0
        diversity = r0 - r1 > threshold * r0
        assert (m[10] == "degrades") == quality and (m[11] == "degrades") == diversity
        falls = [(a - b) / a for a, b in ((p0, p1), (r0, r1)) if a > 0]
        size[(loop, lam)] = (quality or diversity, max([(fd1 - fd0) / fd0, *falls]))
    assert len(size) == 3
    (s_bad, s_size), (f_bad, f_size) = size[("fully-synthetic", 0.5)], size[("fresh-data", 0.5)]
    verdict = "reproduced" if s_bad and (not f_bad or f_size <= s_size / 2) else "not reproduced"
    assert f": {verdict} at λ=0.5 " in out["findings"][-1]
