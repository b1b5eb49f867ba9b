"""The commands that score and analyse a run (``evaluate``, ``interpolate``, ``attributes``, ``geometry``):
their options checked before any work, and their results printed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def one_line(err: BaseException) -> str:
    """An error's message on one line (a KeyError's without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(text.split()) or type(err).__name__


def has_code_grids(run) -> bool:
    """Whether the run's model has discrete codes (a VQ-VAE's code grids)."""
    from latentatlas.models import MODELS

    return MODELS.get(run.config.model.family).code_kind == "discrete"


def named_option(flag: str, value: str, check) -> None:
    """``check(value)``, its ValueError naming ``flag`` and the value given to it."""
    try:
        check(value)
    except ValueError as err:
        raise ValueError(f"{flag} {value!r}: {one_line(err)}") from None


def evaluate_command(args: argparse.Namespace) -> int:
    """``latentatlas evaluate``: a run folder's samples against its own split, or a samples file against
    ``--ref``; prints the scores (a table, or JSON with ``--json``)."""
    from latentatlas.metrics.features import EXTRACTORS
    from latentatlas.runs import pipeline
    from latentatlas.runs.store import Run

    if args.extractor is not None:
        named_option("--extractor", args.extractor, EXTRACTORS.get)
    target = Path(args.target)
    if target.is_dir():
        given = [flag for flag, value in (("--ref", args.ref), ("--ref-root", args.ref_root),
                                          ("--ref-set", args.ref_overrides)) if value]
        if given:
            raise ValueError(f"{given[0]}: applies to a samples file; a run folder is scored against its own test "
                             f"split, got {given[0]} with the run folder {str(target)!r}")
        results = pipeline.evaluate_stage(Run.open(target), extractor=args.extractor, samplers=args.sampler)
    else:
        if not args.ref:
            raise ValueError("--ref: needed when scoring a samples file, e.g. --ref mnist:test")
        if args.sampler:
            raise ValueError(f"--sampler: chooses among a run folder's samples, got it with the file {str(target)!r}")
        if args.ref_root is not None and not Path(args.ref_root).exists():
            raise ValueError(f"--ref-root: no such file or folder {args.ref_root!r}")
        from latentatlas.metrics.evaluate import evaluate_file

        results = evaluate_file(target, args.ref, root=args.ref_root, data_overrides=args.ref_overrides,
                                extractor=args.extractor or "auto")
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        _print_results(results)
    return 0


def _print_results(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from latentatlas.metrics.modes import attribute_lines
    from latentatlas.runs.store import flatten

    table = Table("quantity", "value")
    for key, value in flatten(results).items():
        if "attribute_rates." not in key:   # per-attribute lists: as lines below
            table.add_row(key, f"{value:.5g}" if isinstance(value, float) else str(value))
    Console().print(table)
    for where, rates in _attribute_rates(results):
        print(f"attribute coverage{where} (largest gaps first):")
        print("\n".join(f"  {line}" for line in attribute_lines(rates)))


def _attribute_rates(results: dict, where: str = ""):
    """(' of SAMPLER', attribute_rates) for every result holding attribute rates."""
    if isinstance(results.get("attribute_rates"), dict):
        yield where, results["attribute_rates"]
    for key, value in results.items():
        if isinstance(value, dict) and key != "attribute_rates":
            yield from _attribute_rates(value, f" of {key}")


def analysis_command(args: argparse.Namespace) -> None:
    """One latent-analysis stage; prints its numbers and refreshes report.html."""
    from latentatlas.runs import analyses, pipeline
    from latentatlas.runs.report import write_report
    from latentatlas.runs.store import Run

    if args.command == "interpolate":   # before any work, naming the option
        from latentatlas.latent.interpolate import INTERPOLATORS

        named_option("--method", args.method, INTERPOLATORS.get)
    elif args.command == "attributes":
        from latentatlas.runs.attribute_analysis import check_method

        named_option("--method", args.method, check_method)
    run = Run.open(args.run)
    seed, device = run.config.seed, pipeline.device_for(run.config)
    if args.command == "interpolate" and has_code_grids(run):
        result = analyses.discrete_interpolate_stage(run, n_pairs=args.pairs, steps=args.steps, method=args.method,
                                                     seed=seed, device=device)
    elif args.command == "interpolate":
        result = analyses.interpolate_stage(run, n_pairs=args.pairs, steps=args.steps, method=args.method,
                                            learned_iters=args.learned_iters, seed=seed, device=device)
    elif args.command == "attributes":
        result = analyses.attributes_stage(run, attributes=args.attribute, method=args.method, pairs=args.pair,
                                           seed=seed, device=device)
    else:
        from latentatlas.latent import maps

        methods = tuple(m.strip() for m in args.maps.split(",") if m.strip())
        for method in methods:   # asked for by name: refused before any work, not skipped with a warning
            if method not in maps.METHODS:
                raise ValueError(f"--maps: expected names from {', '.join(maps.METHODS)}, got {method!r}")
            if method not in maps.available_methods():
                raise ImportError(f"--maps: {method} needs an optional package: pip install 'latentatlas[{method}]'")
        result = analyses.geometry_stage(run, map_methods=methods, seed=seed, device=device)
    print(json.dumps(result, indent=2, default=str))
    print(f"report: {write_report(run)}", file=sys.stderr)
