"""The ``runs`` commands (list, tree, diff, compare, note, tag) and ``derive``: parsing and printing only."""

from __future__ import annotations

import argparse
import sys

OUTPUT_FORMATS = ("table", "md", "csv", "tex", "html")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``runs ...``, ``derive`` and the aliases ``list`` and ``compare``."""
    runs = sub.add_parser("runs", help="the runs of a folder: list, tree, diff, compare, note, tag, studies")
    group = runs.add_subparsers(dest="runs_command", required=True)
    _list_args(group.add_parser("list", help="one row per run: stages, headline score, tags, date, parent"))
    p = group.add_parser("tree", help="the family tree of the runs (parent -> derived runs) and what each changed")
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of run folders (default: runs)")
    p = group.add_parser("diff", help="config diff and the change of every score between two runs")
    p.add_argument("old", help="run folder A")
    p.add_argument("new", help="run folder B (changes are B - A)")
    _output_args(p)
    _compare_args(group.add_parser("compare", help="runs side by side; --html writes one page with figures"))
    p = group.add_parser("note", help="append a dated note to the run (shown in its report)")
    p.add_argument("run", help="run folder")
    p.add_argument("text", help="the note")
    p.add_argument("--kind", default="note", help="note (default), looked-at (what I looked at) or concluded "
                   "(what I concluded)")
    p = group.add_parser("tag", help="tag a run (or untag it with --remove)")
    p.add_argument("run", help="run folder")
    p.add_argument("tags", nargs="+", metavar="TAG")
    p.add_argument("--remove", action="store_true", help="remove the tags instead")

    p = group.add_parser("studies", help="the studies of a folder of runs; --html writes a gallery page")
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of run folders (default: runs)")
    p.add_argument("--html", default=None, help="write one page with every study (plots inside)")
    _output_args(p)

    p = sub.add_parser("derive", help="a new run from PARENT's config with changes; records the parent")
    p.add_argument("parent", help="the run folder to derive from")
    p.add_argument("--name", default=None, help="the new run's name (default: made from its config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a config value, e.g. --set model.kl_weight=4 (repeatable)")
    p.add_argument("--train-only", action="store_true", help="train only (default: every stage, as `run`)")
    _list_args(sub.add_parser("list", help="alias of `runs list`"))
    _compare_args(sub.add_parser("compare", help="alias of `runs compare`"))


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of run folders (default: runs)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep runs whose config has this value, e.g. --where model.family=vae (repeatable)")
    p.add_argument("--tag", action="append", default=[], help="keep runs with this tag (repeatable)")
    p.add_argument("--sort", default=None, metavar="KEY", help="sort by name, date, frechet (headline Fréchet "
                   "distance), mse, or a score such as evaluate.prior.recall; --sort=-KEY sorts descending")
    p.add_argument("--format", default="table", choices=(*OUTPUT_FORMATS, "json"),
                   help="table (terminal), md, csv, tex, html or json on stdout")
    p.add_argument("--out", default=None, help="write the table to this file (.md, .csv, .tex or .html)")


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="table", choices=OUTPUT_FORMATS,
                   help="table (terminal), md, csv, tex (LaTeX tabular) or html on stdout")
    p.add_argument("--out", default=None, help="write the table to this file (.md, .csv, .tex or .html)")


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--all", dest="all_scores", action="store_true", help="every score, not only the headline ones")
    p.add_argument("--html", default=None, help="write one page with the runs side by side (figures inside)")
    _output_args(p)


def dispatch(args: argparse.Namespace) -> int:
    """Run the ``runs``/``derive``/``list``/``compare`` command parsed into ``args``."""
    command = args.runs_command if args.command == "runs" else args.command
    handler = {"list": _list, "tree": _tree, "diff": _diff, "compare": _compare, "note": _note, "tag": _tag,
               "studies": _studies, "derive": _derive}[command]
    return handler(args) or 0


def _emit(table, args: argparse.Namespace) -> None:
    """``table`` to --out, or to stdout in --format; an empty table is not drawn for people (the caller says
    why on stderr), but a file or a machine format still gets its header."""
    from latentatlas.runs.tables import print_table, render, write_table

    if args.out:
        print(write_table(table, args.out))
    elif args.format == "table":
        if table.rows:
            print_table(table)
    else:
        sys.stdout.write(render(table, args.format))


def _list(args: argparse.Namespace) -> None:
    from latentatlas.runs.index import list_rows, list_table, rows_json

    rows = list_rows(args.runs_dir, where=args.where, tags=args.tag, sort=args.sort)
    if args.format == "json" and not args.out:
        print(rows_json(rows))
        return
    table = list_table(rows, wide=args.out is not None or args.format != "table")
    if not rows:
        print(f"no runs in {args.runs_dir!r}" + (" match" if args.where or args.tag else ""), file=sys.stderr)
    _emit(table, args)


def _studies(args: argparse.Namespace) -> None:
    from latentatlas.studies.gallery import studies_table, write_gallery

    table = studies_table(args.runs_dir)
    if not table.rows:      # say how to make one, and write no empty page
        print(f"no studies in {args.runs_dir!r}; `latentatlas study NAME RUN` makes one", file=sys.stderr)
    elif args.html:
        print(write_gallery(args.runs_dir, args.html))
    _emit(table, args)


def _tree(args: argparse.Namespace) -> None:
    from latentatlas.runs.index import check_runs_dir
    from latentatlas.runs.lineage import tree_lines

    check_runs_dir(args.runs_dir)
    lines = tree_lines(args.runs_dir)
    if not lines:
        print(f"no runs in {args.runs_dir!r}", file=sys.stderr)
    for line in lines:
        print(line)


def _diff(args: argparse.Namespace) -> None:
    from latentatlas.runs.comparison import diff_table
    from latentatlas.runs.store import Run

    _emit(diff_table(Run.open(args.old), Run.open(args.new)), args)


def _compare(args: argparse.Namespace) -> None:
    from latentatlas.runs.comparison import compare_table
    from latentatlas.runs.store import Run

    runs = [Run.open(r) for r in args.runs]
    table = compare_table(runs, all_scores=args.all_scores)
    if args.html:
        from latentatlas.runs.compare_page import write_compare_page

        print(write_compare_page(runs, args.html))
        if not args.out and args.format == "table":
            return
    _emit(table, args)


def _note(args: argparse.Namespace) -> None:
    from latentatlas.runs.notes import add_note
    from latentatlas.runs.store import Run

    entry = add_note(Run.open(args.run), args.text, args.kind)
    print(f"{entry['date']} {entry['kind']}: {entry['text']}")


def _tag(args: argparse.Namespace) -> None:
    from latentatlas.runs.notes import add_tags
    from latentatlas.runs.store import Run

    print(" ".join(add_tags(Run.open(args.run), args.tags, remove=args.remove)))


def _derive(args: argparse.Namespace) -> None:
    from latentatlas.runs import pipeline
    from latentatlas.runs.lineage import derive_config
    from latentatlas.runs.store import Run

    config = derive_config(Run.open(args.parent), args.overrides, name=args.name)
    if args.train_only:
        print(pipeline.train_stage(config).path)
    else:
        print(pipeline.run_all(config).report_path)
