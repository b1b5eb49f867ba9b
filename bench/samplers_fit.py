"""Fit and sampling time of every latent sampler on one device (issue 14: every sampler on the CPU and on CUDA).

Each spec is fitted on codes on ``--device`` (a CPU generator seeded per run, as the pipeline does) and then
draws ``--samples`` codes; fit and draw are timed separately (queued CUDA work included), alternating the
specs ``--repeats`` times (timing.alternate: every run, median, min and max).  Continuous codes are
``bench_gmm.make_codes`` (54,000 x 16 by default: the shape of the families AE's MNIST training codes);
discrete ones, for ``categorical`` and ``pixelcnn``, are random 7 x 7 grids of ``--codebook`` indices (a
VQ-VAE's code grids on MNIST; timing only, the values carry no structure).  The learned samplers run
``--iters`` training iterations (default 600, a fifth of their defaults): their time grows linearly with
it, so the summary also gives seconds per 1,000 iterations.  Run the same command with ``--device cpu``
and ``--device cuda`` and put the figures side by side.
    python bench/samplers_fit.py [--device cuda] [--repeats 5] [--specs "gmm:k=100" ddpm ...]
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import torch
from bench_gmm import make_codes
from timing import Timed, add_device, add_repeats, alternate, positive_int, protocol

from latentatlas.latent.samplers import SAMPLERS, build_sampler, parse_spec

LEARNED = ("ddpm", "two-stage", "pixelcnn")   # samplers trained by iterations


def default_specs(iters: int) -> list[str]:
    """Every registered sampler at its defaults (the learned ones at ``iters`` iterations), plus ``gmm:k=100``."""
    specs = [f"{name}:iters={iters}" if name in LEARNED else name for name in SAMPLERS.names()]
    return specs + ["gmm:k=100"]


def codes_for(spec: str, n: int, d: int, codebook: int, device: str) -> torch.Tensor:
    """The codes ``spec`` fits: (n, d) float32, or (n, 7, 7) int64 grids for a discrete sampler; on ``device``."""
    if SAMPLERS.get(parse_spec(spec)[0]).code_kind == "discrete":
        return torch.randint(codebook, (n, 7, 7), generator=torch.Generator().manual_seed(0)).to(device)
    return make_codes(n, d, 50, 0).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="*", default=None, help="sampler specs (default: every sampler)")
    parser.add_argument("--n", type=positive_int, default=54000, help="codes fitted")
    parser.add_argument("--d", type=positive_int, default=16, help="code dimension (continuous codes)")
    parser.add_argument("--codebook", type=positive_int, default=512, help="indices of the discrete code grids")
    parser.add_argument("--samples", type=positive_int, default=10000, help="codes drawn after each fit")
    parser.add_argument("--iters", type=positive_int, default=600, help="iterations of the learned samplers")
    add_repeats(parser)
    add_device(parser)
    args = parser.parse_args()
    specs = args.specs or default_specs(args.iters)
    codes = {spec: codes_for(spec, args.n, args.d, args.codebook, args.device) for spec in specs}
    draws: dict[str, list[float]] = {spec: [] for spec in specs}

    def run(spec: str):
        """A run for timing.alternate: each call fits ``spec`` (seeded 1, 2, ...) and returns its seconds, with
        the draw's seconds as the note."""
        fit_seeds = itertools.count(1)

        def once() -> tuple[float, str]:
            generator = torch.Generator().manual_seed(next(fit_seeds))
            fit = Timed(lambda: build_sampler(spec).fit(codes[spec], generator=generator))
            fit_s = fit()
            draw = Timed(lambda: fit.last.sample(args.samples, generator=torch.Generator().manual_seed(1)))
            draws[spec].append(draw())
            return fit_s, f"draw {args.samples}: {draws[spec][-1]:.3f} s, on {draw.last.device}"
        return once

    protocol(f"latent samplers: fit and draw on {args.device}",
             {"codes": f"continuous {args.n} x {args.d} (bench_gmm.make_codes, seed 0); discrete {args.n} x 7 x 7 "
                       f"grids of {args.codebook} indices", "draws": args.samples,
              "learned samplers": f"{args.iters} iterations", "device": args.device, "repeats": args.repeats},
             ("torch",))
    for spec in specs:     # warm-up (the first call of each kernel allocates), on enough codes for k=100
        build_sampler(spec.replace(f"iters={args.iters}", "iters=2")).fit(
            codes[spec][:20000], generator=torch.Generator().manual_seed(0)).sample(10)
    fits = alternate({spec: run(spec) for spec in specs}, args.repeats)
    print(f"{'spec':28s} {'fit s (median)':>15s} {'per 1,000 it':>13s} {'draw s (median)':>16s}")
    for spec in specs:
        name, settings = parse_spec(spec)
        per = f"{1000 * fits[spec] / int(settings['iters']):13.2f}" if "iters" in settings else f"{'':13s}"
        print(f"{spec:28s} {fits[spec]:15.3f} {per} {statistics.median(draws[spec]):16.3f}")


if __name__ == "__main__":
    main()
