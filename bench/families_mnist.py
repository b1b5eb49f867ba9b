"""Model families and ex-post samplers on full MNIST under one training budget (issue 9): VAE, AE, AAE and
VQ-VAE with the same conv encoder/decoder (width 32, 16-d codes, or 7x7 grids of 16-d codebook vectors),
each trained for ``--minutes``, then sampled by its samplers; 10,000 samples each scored against the 10,000
test images in the dataset classifier's features (Fréchet distance, precision, recall, classes covered),
with the test reconstruction error and each sampler's fitting time; ``empirical`` (the training codes
themselves) is each model's floor.  Also: VQ-VAE codebook usage over
its first epoch with and without dead-code reset (same seed).  Run it with the machine to itself.
Usage:
    python bench/families_mnist.py [--minutes 10] [--only vae,ae,aae,vqvae,usage] [--runs-dir /tmp/families]
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from budget import SCORE_COLUMNS, budget_arguments, print_table

METRICS = ["frechet", "prdc", "classes"]
RUNS = {
    "vae": ({"family": "vae", "latent_dim": 16, "width": 32}, ["prior", "gmm:k=100,covariance=full", "empirical"]),
    "ae": ({"family": "ae", "latent_dim": 16, "width": 32},
           ["gmm:k=100,covariance=full", "ddpm", "two-stage", "empirical"]),
    "aae": ({"family": "aae", "latent_dim": 16, "width": 32, "prior": "normal"}, ["prior"]),
    "vqvae": ({"family": "vqvae", "latent_dim": 16, "width": 32, "codebook_size": 512},
              ["categorical", "pixelcnn"]),
}


def run_family(name: str, args) -> list[dict]:
    from latentatlas import config as config_mod
    from latentatlas.runs import pipeline
    from latentatlas.runs.report import write_report

    model, samplers = RUNS[name]
    cfg = config_mod.from_dict({
        "name": name, "runs_dir": args.runs_dir, "seed": 0, "data": {"name": "mnist", "root": args.mnist},
        "model": model, "train": {"epochs": 1000, "batch_size": 128, "max_minutes": args.minutes, "patience": None,
                                  "progress": False},
        "sample": {"samplers": samplers, "n": 10000}, "evaluate": {"metrics": METRICS, "n_real": 10000}})
    done = (Path(args.runs_dir) / name / "metrics.json").is_file()   # trained before: resume (no more training)
    session = pipeline.train_session(cfg, resume=done)
    pipeline.encode_stage(session)
    pipeline.sample_stage(session)
    results = pipeline.evaluate_stage(session)
    interpolation = _interpolation(name, session)
    write_report(session.run)
    m = session.run.read_metrics()
    if interpolation:
        INTERPOLATION[name] = interpolation
    return [{"model": name, "sampler": s["spec"], "frechet": results[stem]["frechet"],
             "precision": results[stem]["precision"], "recall": results[stem]["recall"],
             "classes_covered": results[stem]["classes_covered"], "recon_mse": m["reconstruction"]["mse"],
             "fit_seconds": s.get("fit_seconds"), "epochs": m["train"]["epochs_run"],
             "protocol": results[stem]["protocol"]} for stem, s in m["samplers"].items()]


INTERPOLATION: dict[str, dict] = {}


def _interpolation(name: str, session) -> dict | None:
    """Midpoint quality of paths between 1,000 random test pairs (FD of decoded midpoints vs 1,000 test
    images): re-quantised paths for the VQ-VAE, linear interpolation of codes for the AE of the same size."""
    from latentatlas.runs import analyses

    if name == "vqvae":
        out = analyses.discrete_interpolate_stage(session, n_pairs=64, steps=9)
        return {k: out[k] for k in ("method", "midpoint_fd", "frechet_reconstruction", "cells_changed_per_step",
                                    "cell_changes_per_path", "cells_differing_at_ends")}
    if name == "ae":
        out = analyses.interpolate_stage(session.run, method="lerp", geodesic_pairs=0, learned_iters=0,
                                         model=session.model, dataset=session.data, device=session.device)
        return {"method": "lerp of codes", "midpoint_fd": out["lerp"]["midpoint_fd"],
                "frechet_reconstruction": out["frechet_reconstruction"]}
    return None


def codebook_usage(args) -> list[dict]:
    """The VQ-VAE's codebook usage over its first epoch, with and without dead-code reset (same seed)."""
    from latentatlas import config as config_mod
    from latentatlas.runs import pipeline

    rows = []
    for dead_after in (100, 0):
        cfg = config_mod.from_dict({
            "name": f"usage-{dead_after}", "runs_dir": args.runs_dir, "seed": 0,
            "data": {"name": "mnist", "root": args.mnist},
            "model": {**RUNS["vqvae"][0], "dead_after": dead_after},
            "train": {"epochs": 2, "batch_size": 128, "patience": None, "progress": False},
            "sample": {"samplers": ["categorical"]}})
        run = pipeline.train_stage(cfg)
        for line in run.history():
            rows.append({"dead_after": dead_after, "epoch": line["epoch"], "usage": line["codebook_usage"],
                         "perplexity": line["codebook_perplexity"]})
    return rows


def main() -> None:
    args = budget_arguments(__doc__, only="vae,ae,aae,vqvae,usage", runs_dir="/tmp/latentatlas-families")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows, usage = [], []
    for name in args.only.split(","):          # the table so far is printed and saved after each family
        if name == "usage":
            usage = codebook_usage(args)
        else:
            rows += run_family(name, args)
        report(rows, usage, args)


def report(rows: list[dict], usage: list[dict], args) -> None:
    if rows:
        print(f"\nfull MNIST, {args.minutes:g} minutes of training each; 10,000 samples vs the 10,000 test images "
              f"(protocol: {json.dumps(rows[0]['protocol'])})")
        print_table(rows, [("model", "model", "<8"), ("sampler", "sampler", "<30"), *SCORE_COLUMNS,
                           ("recon", "recon_mse", ">9.5f"), ("fit s", "fit_seconds", ">8.1f")])
    for r in usage:
        print(f"dead-code reset {'on (100 steps)' if r['dead_after'] else 'off':<15} epoch {r['epoch']}: "
              f"{100 * r['usage']:.1f} % of 512 codes used, perplexity {r['perplexity']:.1f}")
    for name, out in INTERPOLATION.items():
        print(f"interpolation {name}: {json.dumps(out)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "usage": usage, "interpolation": INTERPOLATION},
                                              indent=2, default=str))


if __name__ == "__main__":
    main()
