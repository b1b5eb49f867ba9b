"""The toolkit on 64x64 CelebA faces (issue 13): VAE, AE and DCGAN with the same conv width and 64-d codes,
each trained for the same number of epochs on the 8,000 training faces of the CelebA 10k folder, then sampled
by its samplers (prior; Gaussian mixtures, a diffusion model and a second-stage VAE on the AE's codes);
10,000 samples each scored against the 1,000 test faces in the ``celeba-attributes`` features (Fréchet
distance, precision, recall, attribute coverage), with the test reconstruction error and fitting times;
then the checked attribute arithmetic (``latentatlas attributes RUN``; the GAN's on its inverted codes): success
per pair and vector variant, absolute and against c's own decoding.
Usage:
    python bench/faces_celeba.py [--epochs 8] [--only vae,ae,dcgan] [--runs-dir /tmp/latentatlas-faces]
                                 [--samplers MODEL=SPEC;SPEC ...] [--hflip] [--set KEY=VALUE ...]
                                 [--train-only] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from budget import ROOT, SCORE_COLUMNS, print_table

TAR = ROOT.parent / "shared" / "data" / "celeba_10k" / "img_align_celeba_89x109.tar"
METRICS = ["frechet", "prdc", "attributes"]
GMMS = ["gmm:k=20,covariance=full", "gmm:k=50,covariance=full"]
RUNS = {
    "vae": ({"family": "vae", "latent_dim": 64, "width": 32, "likelihood": "gaussian"}, ["prior", *GMMS]),
    "ae": ({"family": "ae", "latent_dim": 64, "width": 32, "likelihood": "gaussian"}, [*GMMS, "ddpm", "two-stage"]),
    "dcgan": ({"family": "dcgan", "latent_dim": 64, "width": 32, "generator_norm": "batch", "loss": "non-saturating",
               "penalty": "r1", "penalty_weight": 1.0, "ema_decay": 0.999, "lr_generator": 0.0005,
               "lr_discriminator": 0.001}, ["prior"]),
}


def config_for(name: str, args):
    from latentatlas import config as config_mod

    model, samplers = RUNS[name]
    samplers = args.samplers.get(name, samplers)
    return config_mod.from_dict(config_mod.apply_overrides({
        "name": name, "runs_dir": args.runs_dir, "seed": 0, "data": {"name": "celeba", "root": args.celeba},
        "model": model, "train": {"epochs": args.epochs, "batch_size": 64, "patience": None, "progress": False,
                                  "hflip": args.hflip},
        "codes": {"method": "encoder"} if name != "dcgan" else {"encoder_steps": 800, "refine_steps": 10},
        "sample": {"samplers": samplers, "n": 10000},
        "evaluate": {"metrics": METRICS, "extractor": "celeba-attributes", "n_real": 1000}}, args.set))


def run_model(name: str, args) -> list[dict]:
    from latentatlas.runs import analyses, pipeline
    from latentatlas.runs.report import write_report

    cfg = config_for(name, args)
    started = (Path(args.runs_dir) / name / "checkpoints" / "last.pt").is_file()   # resume up to the epochs
    session = pipeline.train_session(cfg, resume=started)
    if args.train_only:
        return []
    pipeline.encode_stage(session)
    pipeline.sample_stage(session)
    results = pipeline.evaluate_stage(session)
    arithmetic(name, analyses.attributes_stage(session.run))
    write_report(session.run)
    m = session.run.read_metrics()
    return [{"model": name, "sampler": s["spec"], "frechet": results[stem]["frechet"],
             "precision": results[stem]["precision"], "recall": results[stem]["recall"],
             "attr_gap": results[stem].get("attribute_gap"), "missing": results[stem].get("attributes_missing"),
             "recon_mse": m.get("reconstruction", {}).get("mse"), "fit_seconds": s.get("fit_seconds"),
             "train_seconds": m["train"].get("train_seconds"), "protocol": results[stem]["protocol"]}
            for stem, s in m["samplers"].items() if stem in results]   # not samplers of an earlier config


def arithmetic(name: str, result: dict) -> None:
    """Print the checked arithmetic: per pair and variant, success and success against c's decoding (%)."""
    from latentatlas.latent import arithmetic_check as ac

    print(f"\nChecked arithmetic on {name} (judge {result.get('judge')}): success % / vs c's decoding %")
    for pair, res in result.get("pairs", {}).items():
        cells = [f"{v} {100 * res[v]['success']:.1f} / {100 * res[v]['success_vs_decoded']:.1f}"
                 for v in (ac.BASELINE, *ac.VARIANTS) if isinstance(res.get(v), dict)]
        print(f"  {pair:<18} " + "   ".join(cells) + f"   (steps {res.get('step_scale')})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celeba", default=str(TAR))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--only", default="vae,ae,dcgan")
    parser.add_argument("--runs-dir", default="/tmp/latentatlas-faces")
    parser.add_argument("--samplers", action="append", default=[], metavar="MODEL=SPEC;SPEC",
                        help="samplers of one model in place of its defaults, e.g. 'vae=prior;empirical' (repeatable)")
    parser.add_argument("--hflip", action="store_true", help="train on randomly mirrored faces (train.hflip)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every model, as `latentatlas run --set` (repeatable), e.g. "
                             "train.lr_schedule=cosine")
    parser.add_argument("--train-only", action="store_true", help="only train (or resume) the models")
    parser.add_argument("--json", default=None, help="also write the table to this file")
    args = parser.parse_args()
    args.samplers = sampler_overrides(parser, args.samplers)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows: list[dict] = []
    for name in args.only.split(","):
        rows += run_model(name, args)
        if rows:
            report(rows, args)


def sampler_overrides(parser: argparse.ArgumentParser, values: list[str]) -> dict[str, list[str]]:
    """{model: [sampler spec, ...]} from 'MODEL=SPEC;SPEC' arguments."""
    out = {}
    for value in values:
        name, _, specs = value.partition("=")
        if name not in RUNS or not specs:
            parser.error(f"--samplers: expected MODEL=SPEC;SPEC with MODEL one of {sorted(RUNS)}, got {value!r}")
        out[name] = specs.split(";")
    return out


def report(rows: list[dict], args) -> None:
    print(f"\nCelebA 10k at 64x64, {args.epochs} epochs of training each; 10,000 samples vs the 1,000 test faces "
          f"(protocol: {json.dumps(rows[0]['protocol'])})")
    print_table(rows, [("model", "model", "<7"), ("sampler", "sampler", "<26"), *SCORE_COLUMNS[:3],
                       ("attr gap", "attr_gap", ">9.4f"), ("missing", "missing", ">8"), ("recon", "recon_mse", ">9.5f"),
                       ("fit s", "fit_seconds", ">8.1f"), ("train s", "train_seconds", ">8.0f")])
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
