"""bfloat16 autocast against float32 for every model family (issue 14: which ``train.precision`` to default
to), on full MNIST, each family's own config in configs/.

speed: latentatlas's ``train()`` on the family's network, ``--steps`` batches of the config's batch size
(set-up and checkpoint included), fp32 and bf16 alternating ``--repeats`` times; images/s, median (min, max).

quality: the family's config trained ``--epochs`` epochs in fp32, then in bf16 (same seed, same data, same
split), then the whole pipeline: codes, the sampler named below (a cheap one per family, so that the
comparison is of the training), 10,000 samples scored against the 10,000 test images in the dataset
classifier's features (Fréchet distance, precision, recall, classes covered) and the test reconstruction
error of the codes (a GAN's: its inversion encoder's, without the per-image refinement, which the prior's
samples do not use).  ``--seeds`` repeats it for other training seeds (the split and the judge stay those
of seed 0), to read a difference against the spread between seeds.  Run it with the machine to itself for
the speed part.  Usage:
    python bench/precision_families.py [--only vae,ae,...] [--parts speed,quality] [--steps 100] [--repeats 5]
        [--epochs 2] [--seeds 0] [--mnist ../shared/data/mnist] [--runs-dir /tmp/latentatlas-precision]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

import torch  # noqa: F401  (imported before the protocol line, which prints torch's threads)
from budget import SCORE_COLUMNS, print_table, trainer_images_per_second, train_only, warm_up
from timing import add_repeats, alternate, positive_int, protocol

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {   # name: (config, the sampler of the quality part)
    "vae": ("mnist-vae", "prior"),
    "ae": ("mnist-best", "gmm:k=100,covariance=full"),
    "aae": ("mnist-aae", "prior"),
    "vqvae": ("mnist-vqvae", "categorical"),
    "gan": ("mnist-gan", "prior"),
    "dcgan": ("mnist-dcgan", "prior"),
    "wgan-gp": ("mnist-wgan-gp", "prior"),
    "cgan": ("mnist-cgan", "prior"),
    "infogan": ("mnist-infogan", "prior"),
}
PRECISIONS = ("fp32", "bf16")


def family_config(name: str, args, overrides: tuple[str, ...] = ()):
    """The run config of family ``name``: its file in configs/ on the full MNIST folder ``args.mnist``."""
    from latentatlas import config as config_mod

    file = ROOT / "configs" / f"{FAMILIES[name][0]}.yaml"
    return config_mod.load(file, [f"data.root={args.mnist}", "data.name=mnist", "train.progress=false",
                                  *overrides])


def speed(name: str, args, data) -> dict[str, float]:
    """Median images/s of ``train()`` in each precision (alternating, ``args.repeats`` runs)."""
    from latentatlas.models import build_model

    cfg = family_config(name, args)
    n_classes = int(data.labels.max()) + 1

    def measure(precision: str):
        def one() -> float:
            torch.manual_seed(0)
            model = build_model(cfg.model, tuple(data.images.shape[1:]), n_classes)
            return trainer_images_per_second(model, data, lr=cfg.train.lr, steps=args.steps,
                                             batch=cfg.train.batch_size, precision=precision)
        return one

    print(f"\n== {name} ({FAMILIES[name][0]}.yaml), {args.steps} batches of {cfg.train.batch_size}")
    return alternate({p: measure(p) for p in PRECISIONS}, args.repeats, baseline="fp32", unit="images/s",
                     rate=True, digits=0)


def quality(name: str, precision: str, seed: int, args) -> dict:
    """Train family ``name`` with ``seed`` for ``args.epochs`` epochs at ``precision``, then codes, sampling and
    scores (the split and the judging classifier fixed by data.split_seed 0 whatever the seed)."""
    from latentatlas.runs import pipeline

    sampler = FAMILIES[name][1]
    cfg = family_config(name, args, (
        f"name={name}-{precision}-seed{seed}", f"seed={seed}", "data.split_seed=0", f"runs_dir={args.runs_dir}",
        f"train.epochs={args.epochs}",
        "train.max_minutes=null", "train.patience=null", f"train.precision={precision}",
        f"sample.samplers=[\"{sampler}\"]", "sample.n=10000", "evaluate.metrics=[frechet,prdc,classes]",
        "evaluate.n_real=10000", "codes.refine_steps=0"))
    session = pipeline.train_session(cfg)
    pipeline.encode_stage(session)
    pipeline.sample_stage(session)
    scores = next(iter(pipeline.evaluate_stage(session).values()))
    m = session.run.read_metrics()
    return {"family": name, "autocast": precision, "seed": seed, "sampler": sampler, "epochs": m["train"]["epochs_run"],
            "train_s": m["train"]["train_seconds"], "recon_mse": (m.get("reconstruction") or {}).get("mse"),
            **{k: scores[k] for k in ("frechet", "precision", "recall", "classes_covered")},
            "protocol": scores["protocol"]}


QUALITY_COLUMNS = [("family", "family", "<9"), ("dtype", "autocast", "<6"), ("seed", "seed", "<5"),
                   ("sampler", "sampler", "<28"), ("epochs", "epochs", ">7"), ("train s", "train_s", ">9.0f"),
                   ("MSE", "recon_mse", ">9.5f"), *SCORE_COLUMNS]


def seed_list(text: str) -> list[int]:
    """argparse type: comma-separated non-negative integers."""
    parts = text.split(",")
    if not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return [int(p) for p in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FAMILIES))
    parser.add_argument("--parts", default="speed,quality")
    parser.add_argument("--steps", type=positive_int, default=100)
    parser.add_argument("--epochs", type=positive_int, default=2)
    parser.add_argument("--seeds", default="0", type=seed_list, help="comma-separated training seeds of the quality "
                        "part")
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--runs-dir", default="/tmp/latentatlas-precision")
    add_repeats(parser)
    args = parser.parse_args()
    names = args.only.split(",")
    if unknown := sorted(set(names) - set(FAMILIES)):
        parser.error(f"--only: expected names among {', '.join(FAMILIES)}, got {', '.join(unknown)}")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    protocol("bf16 autocast vs fp32 per family", {"families": names, "parts": args.parts, "steps": args.steps,
                                                  "epochs": args.epochs, "mnist": args.mnist},
             ("torch", "numpy"))
    parts = args.parts.split(",")
    if "speed" in parts:
        from latentatlas.data import load_dataset

        warm_up()
        data = train_only(load_dataset(family_config(names[0], args).data, seed=0))
        medians = {name: speed(name, args, data) for name in names}
        print("\nimages/s, medians:")
        for name, med in medians.items():
            print(f"  {name:<9} fp32 {med['fp32']:>7.0f}  bf16 {med['bf16']:>7.0f}  {med['bf16'] / med['fp32']:.2f}x")
    if "quality" in parts:
        rows = []
        for name in names:
            for seed, precision in itertools.product(args.seeds, PRECISIONS):
                rows.append(quality(name, precision, seed, args))
                print_table(rows[-1:], QUALITY_COLUMNS, header=len(rows) == 1)   # row by row, as each run ends
                Path(args.runs_dir, "quality.json").write_text(json.dumps(rows, indent=1))
        print(f"protocol: {json.dumps(rows[-1]['protocol'])}")


if __name__ == "__main__":
    main()
