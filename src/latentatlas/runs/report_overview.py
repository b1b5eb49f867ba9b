"""The top of a run's report: the answer (headline numbers in a sentence and a small table, the protocol one
click away), the lineage (parent and children, what changed and what it did to every score) and the notes."""

from __future__ import annotations

import os
from typing import Any

from latentatlas.runs.comparison import score_label
from latentatlas.runs.tables import fmt_number, metric_heading, metric_label
from latentatlas.runs.lineage import children, parent_of
from latentatlas.runs.notes import read_notes, run_tags
from latentatlas.runs.report_html import details, e, protocol_table, table
from latentatlas.runs.results import Headline, config_changes, describe_protocol, headline, score_changes
from latentatlas.runs.store import Run

NOTE_HEADINGS = (("looked-at", "What I looked at"), ("concluded", "What I concluded"), ("note", "Notes"))
HEADLINE_SCORES = ("frechet", "precision", "recall")
HIGH_PRECISION, LOW_COVERAGE = 0.8, 0.1   # precision this high beside coverage this low: see _precision_caveat
CLOSE = 0.10   # a runner-up this close may swap places on another draw (the demo: two fits of one k=10 mixture, 8 %)


def answer_section(run: Run, metrics: dict[str, Any]) -> str:
    """One sentence and one small table with the headline numbers; the protocol folded under them."""
    head = headline(metrics)
    out = f"<section id='answer'><p class='answer'>{answer_sentence(head, run)}</p>"
    for warning in [run.unfinished_training(metrics), _collapse_warning(run)]:
        if warning:   # the scores below are of an undertrained or collapsed model
            out += f"<p><b>Warning:</b> {e(warning)}.</p>"
    picks = [("best", head.best)] if head.best else []
    if head.runner_up and (not head.prior or head.runner_up[0] != head.prior[0]):
        picks.append(("second", head.runner_up))
    if head.prior and (not head.best or head.prior[0] != head.best[0]):
        picks.append(("prior sampling", head.prior))
    rows = [[role, spec, *[scores.get(k) for k in HEADLINE_SCORES]] for role, (spec, scores) in picks]
    if rows:
        out += table(["", "sampler", *[metric_heading(k, head.features) for k in HEADLINE_SCORES]], rows)
        out += "<p class='note'>↓ lower is better, ↑ higher is better.</p>"
        out += details("Protocol: how these numbers were made", f"<p>{e(describe_protocol(head.protocol))}.</p>"
                       + protocol_table(head.protocol))
    return out + "</section>"


def answer_sentence(head: Headline, run: Run) -> str:
    """The headline in words (HTML)."""
    parts = []
    if head.best:
        spec, best = head.best
        fd_name = e(metric_label("frechet", head.features))
        if head.prior and head.prior[0] == spec:
            parts.append(f"Prior sampling is the best sampler by {fd_name}: <b>{fmt_number(best['frechet'])}</b>"
                         f"{_pr(best)}")
        else:
            text = f"Best sampler by {fd_name}: <b>{e(spec)}</b> at <b>{fmt_number(best['frechet'])}</b>{_pr(best)}"
            if head.prior:
                text += f", against {fmt_number(head.prior[1]['frechet'])}{_pr(head.prior[1])} for prior sampling"
            parts.append(text)
        caveat = _precision_caveat(best)
        if caveat:
            parts.append(caveat)
        if head.runner_up and head.runner_up[1]["frechet"] <= (1 + CLOSE) * best["frechet"]:
            parts.append(f"{e(head.runner_up[0])} scores within {CLOSE:.0%} of it "
                         f"({fmt_number(head.runner_up[1]['frechet'])}): on another draw the order may not hold")
    else:
        parts.append(f"No samples scored yet (<code>latentatlas evaluate {e(run.path)}</code>)")
    if head.reconstruction is not None and head.codes_method == "inversion":
        parts.append(f"inversion error <b>{fmt_number(head.reconstruction)}</b> (MSE per pixel between the test "
                     "images and the generator's images of their inverted codes)")
    elif head.reconstruction is not None:
        parts.append(f"reconstruction error <b>{fmt_number(head.reconstruction)}</b> (MSE per pixel, test images)")
    if head.set_aside:
        parts.append(f"not ranked with these: {e(', '.join(head.set_aside))}, scored under another protocol "
                     "(another number of images or feature network; the tables below give each one's)")
    return "; ".join(parts) + "."


def _precision_caveat(scores: dict[str, Any]) -> str:
    """A warning when precision is high but coverage near 0: samples that all fall in the wide k-NN balls of
    a few outlying real images count as precise (a collapsed GAN scored 0.986 with coverage 0.004)."""
    precision, coverage = scores.get("precision"), scores.get("coverage")
    if not isinstance(precision, (int, float)) or not isinstance(coverage, (int, float)):
        return ""
    if precision < HIGH_PRECISION or coverage >= LOW_COVERAGE:
        return ""
    return (f"but its precision {fmt_number(precision)} comes with coverage {fmt_number(coverage)}: the samples "
            "sit in the wide neighbourhoods of a few outlying real images, which k-NN precision counts as "
            "realistic (density and coverage, below, do not)")


def _collapse_warning(run: Run) -> str:
    """'the sample monitor flagged mode collapse in 2 of 2 epochs (epoch 2: ...)', or ''."""
    history = run.history()
    flagged = [row for row in history if row.get("monitor_collapse")]
    if not flagged:
        return ""
    last = flagged[-1]
    return (f"the sample monitor flagged mode collapse in {len(flagged)} of {len(history)} epochs "
            f"(epoch {last.get('epoch')}: {last['monitor_collapse']})")


def _pr(scores: dict[str, Any]) -> str:
    shown = [f"{k} {fmt_number(scores[k])}" for k in ("precision", "recall") if k in scores]
    return f" ({', '.join(shown)})" if shown else ""


def lineage_section(run: Run) -> str:
    """Links to the parent and children; the config diff and every score's change from the parent."""
    parent, kids = parent_of(run), children(run)
    links = "".join(f"<li><a href='{e(_href(run, k))}'>{e(k.name)}</a></li>" for k in kids)
    kids_html = f"<p>Derived from this run:</p><ul>{links}</ul>" if kids else ""
    name = run.config_dict().get("parent")
    if not name:
        return f"<h2>Lineage</h2><p class='muted'>This run has no parent run.</p>{kids_html}"
    if parent is None:
        return f"<h2>Lineage</h2><p>Parent <code>{e(name)}</code> was not found beside this run.</p>{kids_html}"
    changes = config_changes(parent.compared_config(), run.compared_config())
    config_html = table(["config key", f"parent ({parent.name})", "this run"], [list(c) for c in changes]) \
        if changes else "<p>Same configuration as the parent.</p>"
    return (f"<h2>How it differs from its parent <a href='{e(_href(run, parent))}'>{e(parent.name)}</a></h2>"
            f"{config_html}{_score_changes(parent, run)}{kids_html}")


def _score_changes(parent: Run, run: Run) -> str:
    merged = {**parent.read_metrics(), **run.read_metrics()}
    changes = score_changes(parent, run)
    rows = [[score_label(c.key, merged), c.old, c.new, c.change if c.change is not None else c.reason]
            for c in changes]
    if not rows:
        return ""
    header = ["score", "parent", "this run", "change"]
    main = [r for r, c in zip(rows, changes) if _is_headline(c.key)]
    out = table(header, main) if main else ""
    return out + details(f"every score's change from the parent ({len(rows)})", table(header, rows))


def _is_headline(key: str) -> bool:
    return key == "reconstruction.mse" or (key.startswith("evaluate.") and key.rsplit(".", 1)[-1] in HEADLINE_SCORES)


def _href(run: Run, other: Run) -> str:
    """The link from ``run``'s report to ``other``'s."""
    return os.path.relpath(other.report_path, run.path).replace(os.sep, "/")


def notes_section(run: Run) -> str:
    """Tags, then what I looked at / what I concluded / other notes, each dated."""
    entries = read_notes(run)
    tags = run_tags(run, entries)
    out = "<h2>Notes</h2>"
    if tags:
        out += "<p>" + "".join(f"<span class='tag'>{e(t)}</span>" for t in tags) + "</p>"
    for kind, heading in NOTE_HEADINGS:
        items = [n for n in entries if n["kind"] == kind]
        if items:
            out += f"<h3>{heading}</h3><ul>" + "".join(
                f"<li><span class='muted'>{e(n.get('date', '')[:16])}</span> {e(n['text'])}</li>" for n in items
            ) + "</ul>"
    if not any(n["kind"] in dict(NOTE_HEADINGS) for n in entries):
        out += (f"<p class='muted'>No notes yet: <code>latentatlas runs note {e(run.path)} \"text\" "
                "--kind looked-at|concluded</code></p>")
    return out
