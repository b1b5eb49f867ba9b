"""Fit latent samplers on one trained run's codes and score their samples, without touching the run folder.

For each spec: fit on the run's training codes (generator seed 1), draw ``--n`` codes (seed 2), decode,
score against the run's evaluation split (Fréchet distance, precision/recall/density/coverage in the
config's extractor's features).  One JSON line per spec with the fit time (a speed figure only when the
machine is otherwise idle).
Usage:
    python bench/samplers_on_run.py RUN SPEC [SPEC ...] [--n 10000]
e.g. python bench/samplers_on_run.py /tmp/families/ae "gmm:k=100,covariance=full" "ddpm:batch_size=1024"
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    from latentatlas.metrics.evaluate import evaluate_samples
    from latentatlas.rng import make_generator
    from latentatlas.runs.pipeline import sampler_for, training_codes
    from latentatlas.runs.session import as_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args()
    session = as_session(args.run)
    config = session.config
    z = training_codes(session.run, config.sample.codes, seed=0)
    real = session.data.part(config.evaluate.split)
    for spec in args.specs:
        sampler = sampler_for(spec, config.model.family)
        started = time.perf_counter()
        sampler.fit(z, generator=make_generator(1))
        fit_seconds = time.perf_counter() - started
        images = session.code_map.decode(sampler.sample(args.n, generator=make_generator(2)), None)
        fake = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        scores = evaluate_samples(fake, real, metrics=("frechet", "prdc"), extractor=config.evaluate.extractor,
                                  train=session.data.part("train"), real_split=config.evaluate.split,
                                  n_real=min(args.n, len(real)))
        print(json.dumps({"spec": spec, "fit_seconds": round(fit_seconds, 1), "protocol": scores["protocol"],
                          **{k: v for k, v in scores.items() if isinstance(v, float)}}), flush=True)


if __name__ == "__main__":
    main()
