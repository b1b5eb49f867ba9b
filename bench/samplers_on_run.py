"""Fit latent samplers on one trained run's codes and score their samples, without touching the run folder.

For each spec and each fit seed: fit on the run's training codes, draw ``--n`` codes ``--draws`` times
(draw seeds 1000 * fit seed + 1, + 2, ...), decode, score against the run's evaluation split (Fréchet
distance, precision/recall/density/coverage in the config's extractor's features).  The sampler
``empirical`` is the floor: ``--n`` of the training codes themselves, what a sampler that reproduced the
training codes exactly would score; the spec ``test-codes`` decodes the evaluation split's own codes (the
reconstruction error alone: paired image for image with the reference, so below any sampler's score); the
spec ``images:SPLIT`` scores ``--n`` real images of that split (all when it has fewer), not decoded: the
data's own floor.
One draw's Fréchet distance varies a lot (sd 14 % for 10,000 MNIST training codes): compare means over
draws and fits, or add ``frechet_inf`` to ``--metrics`` (FD-infinity, without the 1/N bias; take
``--n 50000``).  One JSON line per draw with its scores and the fit time (a speed figure only when the
machine is otherwise idle), then a summary line per spec and distance (mean, sd, min, max over all draws).
Usage:
    python bench/samplers_on_run.py RUN SPEC [SPEC ...] [--n 10000] [--fit-seeds 1] [--draws 1]
                                    [--metrics frechet,prdc]
e.g. python bench/samplers_on_run.py /tmp/families/ae empirical test-codes "gmm:k=100,covariance=full" ddpm --draws 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

DISTANCES = ("frechet", "frechet_inf")   # summarised over draws


def main() -> None:
    from latentatlas.metrics.evaluate import evaluate_samples
    from latentatlas.rng import make_generator
    from latentatlas.runs.pipeline import sampler_for, training_codes
    from latentatlas.runs.session import as_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--fit-seeds", default="1", help="comma-separated generator seeds of the fits")
    parser.add_argument("--draws", type=int, default=1, help="independent draws of --n codes per fit")
    parser.add_argument("--metrics", default="frechet,prdc", help="comma-separated names of metrics.evaluate")
    args = parser.parse_args()
    session = as_session(args.run)
    config = session.config
    z = training_codes(session.run, config.sample.codes, seed=0)
    real = session.data.part(config.evaluate.split)

    def decoded(codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([(session.code_map.decode(chunk, None).clamp(0, 1) * 255).round().to(torch.uint8)
                          for chunk in codes.split(10_000)])

    def score(spec: str, fit_seed: int, draw: int, fit_seconds: float, fake: torch.Tensor) -> dict:
        """Print one JSON line of the images' scores; returns their distances (frechet, frechet_inf)."""
        scores = evaluate_samples(fake, real, metrics=args.metrics.split(","), extractor=config.evaluate.extractor,
                                  train=session.data.part("train"), real_split=config.evaluate.split,
                                  n_real=min(args.n, len(real)), seed=config.data_seed)
        print(json.dumps({"spec": spec, "fit_seed": fit_seed, "draw": draw, "fit_seconds": round(fit_seconds, 1),
                          "protocol": scores["protocol"], **{k: v for k, v in scores.items() if isinstance(v, float)}}),
              flush=True)
        return {k: scores[k] for k in DISTANCES if k in scores}

    for spec in args.specs:
        if spec == "test-codes":
            test_codes = training_codes(session.run, config.sample.codes, split=config.evaluate.split)
            draws = [score(spec, 0, 0, 0.0, decoded(test_codes))]
        elif spec.startswith("images:"):
            images = session.data.part(spec.partition(":")[2]).images
            draws = [score(spec, 0, 0, 0.0, images[torch.randperm(len(images), generator=make_generator(0))[:args.n]])]
        else:
            draws = []
            for fit_seed in [int(s) for s in args.fit_seeds.split(",")]:
                started = time.perf_counter()
                sampler = sampler_for(spec, config.model.family).fit(z, generator=make_generator(fit_seed))
                fit_seconds = time.perf_counter() - started
                draws += [score(spec, fit_seed, draw, fit_seconds,
                                decoded(sampler.sample(args.n, generator=make_generator(1000 * fit_seed + draw))))
                          for draw in range(1, args.draws + 1)]
        for key in [k for k in DISTANCES if k in draws[0]]:
            values = [d[key] for d in draws]
            print(json.dumps({"spec": spec, "score": key, "mean": round(statistics.mean(values), 3),
                              "sd": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
                              "min": round(min(values), 3), "max": round(max(values), 3),
                              "n_scores": len(values)}), flush=True)


if __name__ == "__main__":
    main()
