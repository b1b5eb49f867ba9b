"""Every study on full-MNIST runs, one after another, and their outputs copied into docs/studies/ (the
gallery the README links): summary.md, table.md, table.csv, study.json and the plots of each study, and
docs/studies/README.md with every question, finding and wall time.

Usage (runs trained by bench/families_mnist.py, e.g. copied to /work/mnist-runs/{ae,vae,aae}):
    python bench/studies_mnist.py /work/mnist-runs [--only gmm-k ...] [--docs docs/studies]
Each study uses configs/studies/NAME.yaml; a study already finished in its run folder is reused (resume).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

# study -> the run(s) it works on (folder names under RUNS)
PLAN = {
    "gmm-k": ["ae"], "components": ["ae"], "kde-bandwidth": ["ae"], "regularisation": ["vae"],
    "latent-dim": ["ae"], "reprojection": ["ae"], "interpolation": ["ae", "vae", "aae"], "self-consuming": ["ae"],
    "diffusion-steps": ["ae"],
}
COPIED = ("summary.md", "table.md", "table.csv", "study.json", "config.yaml")


def main() -> None:
    from latentatlas.runs.session import as_session
    from latentatlas.studies import STUDIES, StudyContext, load_settings, run_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="folder holding the trained runs named in PLAN")
    parser.add_argument("--only", nargs="*", default=None, help="studies to run (default: all registered)")
    parser.add_argument("--docs", type=Path, default=Path(__file__).parents[1] / "docs" / "studies")
    args = parser.parse_args()
    root = Path(__file__).parents[1]
    for name in args.only or [n for n in PLAN if n in STUDIES]:
        settings = load_settings(name, root / "configs" / "studies" / f"{name}.yaml")
        sessions = [as_session(args.runs / r) for r in PLAN[name]]
        contexts = [StudyContext.from_session(s, n_real=settings.n_real) for s in sessions]
        started = time.perf_counter()
        result = run_study(name, contexts, settings)
        wall = time.perf_counter() - started
        out = args.docs / name
        out.mkdir(parents=True, exist_ok=True)
        for item in [*COPIED, *result.figures]:
            shutil.copyfile(result.folder / item, out / item)
        print(json.dumps({"study": name, "runs": PLAN[name], "wall_seconds": round(wall),
                          "cell_seconds": round(result.seconds), "findings": result.findings}), flush=True)
    write_index(args.docs)


def write_index(docs: Path) -> None:
    """docs/studies/README.md: each study's question, findings, first plot and wall time of its cells."""
    lines = ["# Studies on full MNIST", "", "Made by `python bench/studies_mnist.py RUNS` (each study: "
             "`latentatlas study NAME RUN --config configs/studies/NAME.yaml`). One folder per study holds its "
             "summary, table (Markdown and CSV), plots, settings and protocol. Fréchet distances compare only "
             "between studies scored in the same features (the weights each section names).", ""]
    for folder in sorted(p for p in docs.iterdir() if (p / "study.json").is_file()):
        study = json.loads((folder / "study.json").read_text())
        lines += [f"## [{study['study']}]({folder.name}/summary.md) · {', '.join(study['runs'])}", "",
                  f"**{study['question']}**", "", *[f"- {f}" for f in study["findings"]], ""]
        lines += [f"![{caption}]({folder.name}/{name})" for name, caption in list(study["figures"].items())[:1]]
        protocol = study.get("protocol", {})
        scored = (f"Scored in {protocol.get('extractor', '?')} features (weights "
                  f"{str(protocol.get('weights_hash', '?'))[:8]}) against {protocol.get('n_real', '?')} real "
                  f"{protocol.get('real', '')} images; ") if protocol else ""
        lines += ["", f"{scored}{study['cells']} cells, {study['seconds'] / 60:.1f} min of cell time.", ""]
    (docs / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
