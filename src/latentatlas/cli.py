"""Command line: parsing only.  Results go to stdout, logs and progress bars to stderr.

Every expected failure (bad input, a missing or damaged file, a diverged training) ends in one line
``latentatlas: error: <file or parameter>: ...`` and exit code 2; Ctrl-C in one line saying how to go on and
exit code 130; anything else (a bug) in one line and exit code 1.  ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import traceback
from importlib import resources

from latentatlas import __version__, cli_runs
from latentatlas.cli_stages import analysis_command, evaluate_command, named_option, one_line
from latentatlas import config as config_mod
from latentatlas.validate import check_number

log = logging.getLogger("latentatlas")

EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 2, 1, 130, 141   # 141: a shell's code for SIGPIPE
DESCRIPTION = ("Train generative models on images, then map, sample and score their latent spaces; one folder per "
               "run,\nexplained by its report.html.  Results go to stdout, logs and progress bars to stderr.")
EPILOG = """start here:
  latentatlas demo                          the whole chain on the embedded MNIST digits (about a minute)
  latentatlas run CONFIG.yaml               train, encode, sample, evaluate and report (examples: configs/)
  latentatlas COMMAND --help                the options of one command

errors are one line naming the file or parameter (exit code 2); -v shows the traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors in the one-line form of every other error."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"latentatlas: error: {message} (see `{self.prog} --help`)\n")


class _CommandParser(_Parser):
    """A command's parser: takes -v after the command too (``latentatlas train CONFIG -v``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="debug logging and tracebacks of errors")


def _count(low: int):
    """An argparse type: an int >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
            check_number("value", value, low=low, integer=True)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}") from None
        return value

    return parse


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run config (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")


def _run_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, e.g. runs/my-run")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="latentatlas", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"latentatlas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)

    p = sub.add_parser("train", help="train a model; creates the run folder")
    _config_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run named in the config from last.pt")
    p = sub.add_parser("run", help="train, encode, sample, evaluate and report in one go")
    _config_args(p)
    p.add_argument("--resume", action="store_true", help="continue training from last.pt, then the other stages")
    p = sub.add_parser("demo", help="the whole chain on the embedded MNIST digits (about a minute on a CPU)")
    p.add_argument("--runs-dir", default="runs", help="where the run folder goes (default: runs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("encode", help="encode the dataset into latents.npz")
    _run_arg(p)
    p = sub.add_parser("sample", help="fit latent samplers on the codes and decode samples")
    _run_arg(p)
    p.add_argument("--sampler", action="append", default=None, metavar="SPEC",
                   help="sampler spec, e.g. gmm:k=50,covariance=diag (repeatable; default: the config's)")
    p.add_argument("--n", type=_count(1), default=None, help="number of samples per sampler")
    p = sub.add_parser("evaluate", help="score a run's samples, or any samples .npz against a reference")
    p.add_argument("target", help="a run folder, or a samples .npz (arr_0: uint8 N x H x W x C)")
    p.add_argument("--ref", help="reference for a samples file: DATASET[:SPLIT] (e.g. mnist:test; the split "
                   "defaults to test) or a stats .npz")
    p.add_argument("--ref-root", default=None, help="where the reference dataset's files are (its data.root), "
                   "e.g. ../shared/data/mnist for the full MNIST")
    p.add_argument("--ref-set", dest="ref_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the reference dataset's data section, e.g. --ref-set image_size=32 or "
                   "--ref-set options.images=x (repeatable)")
    p.add_argument("--extractor", default=None, help="feature extractor: classifier, celeba-attributes, inception, "
                   "pixels, ... (default: the run's, or auto: classifier for labelled data, else inception when its "
                   "weights are on disk, else celeba-attributes for faces)")
    p.add_argument("--sampler", action="append", default=None, metavar="SPEC",
                   help="for a run folder: score only this sampler's samples, by spec (gmm:k=50) or file name "
                   "(gmm_k-50) (repeatable; default: every samples file)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p = sub.add_parser("report", help="write report.html")
    _run_arg(p)
    p = sub.add_parser("interpolate", help="interpolate between test codes; measure and draw the paths")
    _run_arg(p)
    p.add_argument("--method", default="slerp", help="interpolator for the figures: lerp, slerp or norm")
    p.add_argument("--pairs", type=_count(1), default=64, help="number of random pairs of test codes")
    p.add_argument("--steps", type=_count(2), default=9, help="points per path, endpoints included")
    p.add_argument("--learned-iters", type=_count(0), default=200,
                   help="iterations of the learned interpolation network (0: skip it)")
    p = sub.add_parser("attributes", help="attribute vectors from labels/attributes, arithmetic and sweeps")
    _run_arg(p)
    p.add_argument("--attribute", action="append", default=None, metavar="NAME",
                   help="attribute (CelebA) or class label to analyse (repeatable; default: a few)")
    p.add_argument("--method", default="balanced", help="mean, balanced, refined or probe")
    p.add_argument("--pair", action="append", default=None, metavar="A/B",
                   help="attribute pair for the checked arithmetic, e.g. Smiling/Male (repeatable; default: "
                   "Smiling/Male, Eyeglasses/Male, Blond_Hair/Young where the run has them)")
    p = sub.add_parser("geometry", help="hull membership, distances, axis walks, drift, maps")
    _run_arg(p)
    p.add_argument("--maps", default="pca,tsne,isomap", help="comma-separated 2-D map methods "
                   "(pca, tsne, isomap, lle, umap; '' for none)")
    p = sub.add_parser("explore", help="a local web page to click through the run's latent space (and its API)")
    _run_arg(p)
    p.add_argument("--port", type=int, default=8000, help="port to serve on (default: 8000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only; the explorer has no login)")
    p.add_argument("--max-points", type=int, default=5000, help="codes drawn on the map at most (default: 5000)")
    p = sub.add_parser("study", help="answer a research question on runs: a table, plots and findings in "
                       "RUN/studies/NAME/ (resumable)")
    p.add_argument("name", help="the study: gmm-k, components, kde-bandwidth, diffusion-steps, regularisation, "
                   "latent-dim, reprojection, interpolation, self-consuming")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s); a one-model study runs once per run")
    p.add_argument("--config", default=None, help="a study config (e.g. configs/studies/gmm-k.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a setting, e.g. --set seeds=1 or --set ks=[1,10,100] (repeatable)")
    p.add_argument("--fresh", action="store_true", help="recompute every cell instead of resuming")
    cli_runs.add_parsers(sub)
    sub.add_parser("env", help="versions, device and git revision, for bug reports (JSON)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0, 2 for an expected error, 130 on Ctrl-C, 141 when the reader
    of its output left, 1 for a bug)."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        code = _dispatch(args)
        sys.stdout.flush()   # a reader that left shows here, not as an error at exit
        return code
    except KeyboardInterrupt as stop:
        if int(os.environ.get("RANK", "0")) == 0:   # torchrun's workers: rank 0 says it once, for all
            _fail(args, f"latentatlas: {_interrupted(args, stop)}")
        return EXIT_INTERRUPTED
    except BrokenPipeError:   # the reader of the output left (`| head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return EXIT_BROKEN_PIPE
    except _expected_errors() as err:
        _fail(args, f"latentatlas: error: {one_line(err)}")
        return EXIT_ERROR
    except Exception as err:
        _fail(args, f"latentatlas: internal error: {type(err).__name__}: {one_line(err)} (a bug: rerun with -v for "
                    "the traceback and report it with the output of `latentatlas env`)")
        return EXIT_BUG


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can fix: bad input or settings (ValueError), missing, damaged or unwritable files
    (OSError), a missing optional package (ImportError), a diverged training."""
    from latentatlas.training.state import TrainingDiverged

    return ValueError, OSError, ImportError, TrainingDiverged


def _fail(args: argparse.Namespace, line: str) -> None:
    if args.verbose:
        traceback.print_exc()
    print(line, file=sys.stderr)


def _interrupted(args: argparse.Namespace, stop: KeyboardInterrupt) -> str:
    """The one line after Ctrl-C: where training stopped and the command that continues it."""
    from latentatlas.training.state import TrainingInterrupted

    training = isinstance(stop, TrainingInterrupted)
    what = one_line(stop) if training else "interrupted; the files of finished stages are kept"
    if args.command == "demo":
        return f"{what}; run `latentatlas demo` again to start over"
    if args.command not in ("train", "run"):
        return f"{what}: run the same command again to go on"
    workers = os.environ.get("LOCAL_WORLD_SIZE") if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    launcher = ["torchrun", f"--nproc_per_node={workers}", "-m", "latentatlas.cli"] if workers else ["latentatlas"]
    again = [*launcher, args.command, args.config, "--resume"]
    for override in args.overrides:
        again += ["--set", override]
    if not training:
        verb = "continue with"
    else:
        verb = "resume with" if stop.checkpoint else "start it again with"
    return f"{what}; {verb}: {shlex.join(again)}"


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    from rich.console import Console

    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    worker = int(os.environ.get("RANK", "0")) > 0   # torchrun's other processes: rank 0 tells the story
    level = logging.DEBUG if verbose else logging.WARNING if worker else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler])


def _dispatch(args: argparse.Namespace) -> int:
    from latentatlas.runs import pipeline
    from latentatlas.runs.report import write_report
    from latentatlas.runs.store import Run

    cmd = args.command
    if cmd in ("train", "run"):
        config = config_mod.load(args.config, args.overrides)
        run = (pipeline.train_stage if cmd == "train" else pipeline.run_all)(config, resume=args.resume)
        if pipeline.is_main_process():   # one line for a script to read, not one a process
            print(run.report_path if cmd == "run" else run.path)
    elif cmd == "demo":
        config = demo_config(args.runs_dir, args.overrides)
        run = pipeline.run_all(config)
        _demo_analyses(run)
        print(f"report: {run.report_path.resolve()}")
    elif cmd == "encode":
        print(pipeline.encode_stage(Run.open(args.run)))
    elif cmd == "sample":
        from latentatlas.latent.samplers import build_sampler

        for spec in args.sampler or ():   # before any work, naming the option
            named_option("--sampler", spec, build_sampler)
        for path in pipeline.sample_stage(Run.open(args.run), args.sampler, n=args.n):
            print(path)
    elif cmd == "evaluate":
        return evaluate_command(args)
    elif cmd in ("interpolate", "attributes", "geometry"):
        analysis_command(args)
    elif cmd == "report":
        print(write_report(Run.open(args.run)))
    elif cmd == "explore":
        from latentatlas.explore import serve

        serve(Run.open(args.run), host=args.host, port=args.port, max_points=args.max_points)
    elif cmd == "study":
        _study(args)
    elif cmd in ("runs", "derive", "list", "compare"):
        return cli_runs.dispatch(args)
    elif cmd == "env":
        from latentatlas.runs.store import environment

        print(json.dumps(environment(), indent=2))
    return 0


def _study(args: argparse.Namespace) -> None:
    """One study on the runs (once per run unless the study compares runs); prints findings and folders."""
    from latentatlas.runs.report import write_report
    from latentatlas.runs.session import as_session
    from latentatlas.studies import STUDIES, StudyContext, load_settings, run_study

    settings = load_settings(args.name, args.config, args.overrides)
    sessions = [as_session(r) for r in args.runs]
    contexts = [StudyContext.from_session(s, n_real=settings.n_real) for s in sessions]
    groups = [contexts] if STUDIES.get(args.name).multi_run else [[c] for c in contexts]
    for group in groups:
        result = run_study(args.name, group, settings, fresh=args.fresh)
        for line in result.findings:
            print(f"- {line}")
        print(result.folder / "summary.md")
        print(f"report: {write_report(sessions[contexts.index(group[0])].run)}", file=sys.stderr)


def _demo_analyses(run) -> None:
    """The demo's report also shows an interpolation strip and a 2-D map of the codes: the interpolate stage
    without its slow parts (geodesics, learned network) and the geometry stage with a PCA map only."""
    from latentatlas.runs import analyses, pipeline
    from latentatlas.runs.report import write_report

    seed, device = run.config.seed, pipeline.device_for(run.config)
    analyses.interpolate_stage(run, n_pairs=16, geodesic_pairs=0, learned_iters=0, seed=seed, device=device)
    analyses.geometry_stage(run, map_methods=("pca",), n_hull=1000, n_query=100, seed=seed, device=device)
    write_report(run)


def demo_config(runs_dir: str, overrides: list[str] = ()) -> config_mod.RunConfig:
    import time

    import yaml

    values = yaml.safe_load(resources.files("latentatlas.configs").joinpath("demo.yaml").read_text())
    values["runs_dir"] = runs_dir
    values.setdefault("name", f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    return config_mod.from_dict(config_mod.apply_overrides(values, overrides))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
