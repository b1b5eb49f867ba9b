"""GANs on full MNIST within a training budget (issue 8), beside the VAE + GMM run of the same budget and a
textbook DCGAN written in plain PyTorch (bench/plain_dcgan.py).

Each latentatlas run is the shipped config (configs/mnist-dcgan.yaml, configs/mnist-wgan-gp.yaml,
configs/mnist-vae.yaml) with ``train.max_minutes`` set to the budget; the GAN runs are then inverted and
sampled from the N(0, I) prior and from GMMs fitted on the inverted codes.  Every sample set (10,000) is
scored against the 10,000 MNIST test images in the dataset classifier's features, one protocol for all.
Run it with the machine to itself: the budget is wall-clock time.  Usage:
    python bench/gan_mnist.py [--minutes 10] [--only dcgan,wgan-gp,vae,plain] [--runs-dir /tmp/gan-bench]
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from budget import SCORE_COLUMNS, budget_arguments, print_table  # noqa: E402

RUNS = {"dcgan": "mnist-dcgan.yaml", "wgan-gp": "mnist-wgan-gp.yaml", "vae": "mnist-vae.yaml",
        "infogan": "mnist-infogan.yaml"}
GAN_SAMPLERS = ["prior", "prior:temperature=0.8", "gmm:k=10,covariance=full", "gmm:k=100,covariance=full"]
SAMPLERS = {"dcgan": GAN_SAMPLERS, "wgan-gp": GAN_SAMPLERS, "vae": ["prior", "gmm:k=100,covariance=full"],
            "infogan": ["prior"]}
METRICS = ["frechet", "prdc", "classes"]


def latentatlas_run(name: str, args) -> dict:
    """Train, code, sample and evaluate one shipped config under the budget; its rows for the table."""
    from latentatlas import config as config_mod
    from latentatlas.runs import pipeline
    from latentatlas.runs.report import write_report

    overrides = [f"name={name}", f"runs_dir={args.runs_dir}", f"data.root={args.mnist}", "train.progress=false",
                 f"train.max_minutes={args.minutes}", "train.epochs=1000", "sample.n=10000",
                 "evaluate.n_real=10000", f"evaluate.metrics={json.dumps(METRICS)}",
                 f"sample.samplers={json.dumps(SAMPLERS[name])}"]
    if name == "vae":
        overrides.append("train.patience=null")
    if name == "infogan":   # scored on prior samples only: a light inversion is enough for the codes stage
        overrides += ["codes.encoder_steps=200", "codes.refine_steps=0"]
    elif name != "vae":     # 10 refinement steps per image instead of the config's 30: 70,000 images on a CPU
        overrides += ["codes.refine_steps=10"]
    cfg = config_mod.load(ROOT / "configs" / RUNS[name], overrides)
    session = pipeline.train_session(cfg)
    pipeline.encode_stage(session)
    pipeline.sample_stage(session)
    results = pipeline.evaluate_stage(session)
    write_report(session.run)
    metrics = session.run.read_metrics()
    train = metrics["train"]
    rows = []
    for stem, summary in metrics["samplers"].items():
        rows.append({"model": name, "sampler": summary["spec"], **_scores(results[stem]),
                     "epochs": train["epochs_run"], "train_seconds": train["train_seconds"],
                     "recon_mse": metrics["reconstruction"]["mse"], "codes": metrics["codes"]["method"],
                     "codes_seconds": metrics["codes"].get("encoder_seconds"),
                     "infogan_categorical_error": metrics.get("infogan", {}).get("categorical_error")})
    return {"rows": rows, "report": str(session.run.report_path)}


def plain_run(args) -> dict:
    """The textbook DCGAN: trained in plain PyTorch for the budget, its samples scored the same way."""
    import plain_dcgan

    from latentatlas.metrics.evaluate import evaluate_file

    g_net, info = plain_dcgan.train(plain_dcgan.load_mnist_train(Path(args.mnist)), minutes=args.minutes)
    out = Path(args.runs_dir) / "plain-dcgan.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, arr_0=plain_dcgan.sample(g_net, 10000))
    scores = evaluate_file(out, "mnist:test", root=args.mnist, metrics=METRICS, n_real=10000)
    return {"rows": [{"model": "plain PyTorch DCGAN", "sampler": "prior", **_scores(scores),
                      "epochs": round(info["epochs"], 2), "train_seconds": info["seconds"]}]}


def _scores(result: dict) -> dict:
    keys = ("frechet", "precision", "recall", "density", "coverage", "classes_covered", "class_kl")
    return {k: result.get(k) for k in keys} | {"protocol": result["protocol"]}


def main() -> None:
    args = budget_arguments(__doc__, only="dcgan,wgan-gp,vae,plain", runs_dir="/tmp/latentatlas-gan-bench")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for name in args.only.split(","):          # the table so far is printed and saved after each model
        rows += (plain_run(args) if name == "plain" else latentatlas_run(name, args))["rows"]
        report(rows, args)


def report(rows: list[dict], args) -> None:
    print(f"\nfull MNIST, {args.minutes:g} minutes of training each; 10,000 samples vs the 10,000 test images, "
          f"classifier features (protocol: {json.dumps(rows[0]['protocol'])})")
    print_table(rows, [("model", "model", "<22"), ("sampler", "sampler", "<28"), *SCORE_COLUMNS,
                       ("epochs", "epochs", ">8"), ("train s", "train_seconds", ">9.0f")])
    for r in rows:
        if r.get("infogan_categorical_error") is not None:
            print(f"InfoGAN categorical code vs digit class (Hungarian matching, dataset classifier): "
                  f"{100 * r['infogan_categorical_error']:.1f} % error")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
