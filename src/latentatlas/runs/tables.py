"""Tables for people.  Every comparison (``runs list``, ``diff``, ``compare``) is a :class:`Table` that prints
in the terminal or is exported as Markdown, CSV, a LaTeX ``tabular`` or an HTML fragment, always with its
protocol as a footnote; metrics and config keys carry the names a reader understands, and numbers the
digits that mean something."""

from __future__ import annotations

import csv
import html
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentatlas.fileio import write_text

# metric key (the last part of a metrics.json path) -> column name; {features} is the extractor's name
METRIC_LABELS = {
    "frechet": "Fréchet distance ({features} features)",
    "frechet_inf": "FD-infinity ({features} features)",
    "frechet_inf_slope": "FD bias slope (FD at N = FD-infinity + slope / N)",
    "precision": "precision", "recall": "recall", "density": "density", "coverage": "coverage",
    "kid": "KID: squared kernel MMD ({features} features)", "kid_std": "KID std",
    "is": "Inception-style score (the {features} network's classes)", "is_std": "IS std",
    "classes_covered": "classes covered", "n_classes": "classes in the data", "class_kl": "KL to the class shares",
    "attribute_gap": "attribute rate gap", "attributes_missing": "attributes missing", "n_attributes": "attributes",
    "nn_train_mean": "distance to nearest training image ({features} features)",
    "nn_train_median": "median distance to training", "nn_train_min": "smallest distance to training",
    "nn_train_ratio": "nearest-training / nearest-test ratio",
    "data_copying_z": "data-copying Z", "data_copying_cells": "cells tested", "data_copying_n_cells": "cells",
    "mse": "reconstruction error (MSE per pixel)", "psnr": "reconstruction PSNR (dB, mean of the images')",
    "epochs_run": "epochs", "steps": "steps", "best_score": "best selection score", "best_epoch": "best epoch",
    "val_loss": "validation loss", "monitor_frechet": "monitor Fréchet distance (prior draws)",
    "best_val_loss": "best validation loss (picks best.pt)",
    "best_monitor_frechet": "best monitor Fréchet distance (picks best.pt; prior draws, the monitor's images)",
    "seconds_per_epoch": "seconds per epoch (validation and monitor included)",
    "train_seconds": "seconds in training steps",
    "test_log_likelihood": "test log-likelihood per code", "fit_seconds": "fit seconds",
    "midpoint_fd": "midpoint Fréchet distance", "step_cv": "step-size variation", "cycle_error_mean":
    "decode-encode cycle error", "realism_mean": "frames inside the real manifold", "path_length": "path length",
    "active_units": "active latent units", "hull_fraction_test": "test codes inside the training hull",
    "hull_fraction_train": "held-out training codes inside the hull", "pearson": "latent-pixel distance Pearson",
    "spearman": "latent-pixel distance Spearman", "nn_agreement": "same nearest neighbour",
    "mardia_skewness_p": "Mardia skewness p", "mardia_kurtosis_p": "Mardia kurtosis p",
    "bic_best_k": "mixture components by BIC", "bic_best_k_at_edge": "... the largest k tried (more may fit better)",
    "drift_from_start": "re-projection drift", "kl_total": "total KL",
    "auc_balanced": "AUC of the balanced vector", "auc_probe": "AUC of the probe", "judge_gain":
    "classifier gain along the vector",
}
CONFIG_LABELS = {"model.family": "family", "data.name": "data", "model.latent_dim": "latent size"}
PROTOCOL_LABELS = {"extractor": "feature extractor", "weights_hash": "extractor weights",
                   "weights_source": "extractor weights from", "real_dataset": "reference data set",
                   "real_split": "reference split", "n_real": "real images",
                   "n_fake": "generated images", "seed": "seed", "k_precision_recall": "k (precision, recall)",
                   "k_density_coverage": "k (density, coverage)", "kid_subset_size": "KID subset size",
                   "frechet_inf_sizes": "FD-infinity fitted on",
                   "classes_min_share": "least class share counted", "n_train": "training images",
                   "attribute_rate": "attribute rate",
                   "attribute_missing_ratio": "attribute missing below this share of its real rate"}


# which way a score is better, for the arrows of the report's headers ("↓ lower is better")
LOWER_IS_BETTER = {"frechet", "frechet_inf", "kid", "class_kl", "attribute_gap", "attributes_missing", "mse",
                   "midpoint_fd", "step_cv", "cycle_error_mean", "drift_from_start", "best_val_loss",
                   "best_monitor_frechet"}
HIGHER_IS_BETTER = {"precision", "recall", "coverage", "is", "classes_covered", "psnr", "test_log_likelihood",
                    "realism_mean", "auc_balanced", "auc_probe"}


def better(key: str) -> str | None:
    """'lower' or 'higher': which way the metric ``key`` (a dotted path or its last part) is better; None
    where neither is (density, distances to training, counts)."""
    last = key.rsplit(".", 1)[-1]
    return "lower" if last in LOWER_IS_BETTER else "higher" if last in HIGHER_IS_BETTER else None


def metric_heading(key: str, features: str | None = None) -> str:
    """The metric's label with an arrow the way it is better: 'recall ↑', 'Fréchet distance (...) ↓'."""
    arrow = {"lower": " ↓", "higher": " ↑"}.get(better(key), "")
    return metric_label(key, features) + arrow


def metric_label(key: str, features: str | None = None) -> str:
    """The column name of a metric ``key`` (a dotted path or its last part)."""
    last = key.rsplit(".", 1)[-1]
    label = METRIC_LABELS.get(last)
    if label is None:
        return key.replace("_", " ")
    return label.format(features=features or "extractor")


def key_label(key: str) -> str:
    """A config or protocol key as words (an unknown dotted key stays as it is, '_' reads as a space)."""
    return CONFIG_LABELS.get(key) or PROTOCOL_LABELS.get(key) or (key if "." in key else key.replace("_", " "))


def fmt_number(value: Any, digits: int = 3) -> str:
    """``value`` rounded to ``digits`` significant digits, without exponents for everyday magnitudes:
    72.6178 -> '72.6', 426.93 -> '427', 12345.6 -> '12,346', 0.000123 -> '1.23e-04'; ints stay whole,
    anything else is str()."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10 ** digits:
        return f"{value:,.0f}"
    if magnitude < 1e-3:
        return f"{value:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_change(old: Any, new: Any, digits: int = 3) -> str:
    """'+1.23 (+4.5%)': the change from ``old`` to ``new``."""
    change = new - old
    text = ("+" if change > 0 else "") + fmt_number(float(change), digits)
    if old:
        text += f" ({'+' if change > 0 else ''}{fmt_number(100.0 * change / abs(old), 2)}%)"
    return text


FORMATS = ("md", "csv", "tex", "html")
SUFFIXES = {".md": "md", ".markdown": "md", ".csv": "csv", ".tex": "tex", ".html": "html", ".htm": "html"}


@dataclass
class Table:
    """A header, rows of values (numbers are rounded when rendered) and footnotes (the protocol)."""

    header: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    title: str = ""

    def cells(self) -> list[list[str]]:
        return [[fmt_number(v) for v in row] for row in self.rows]


def render(table: Table, fmt: str) -> str:
    """``table`` as text in ``fmt``: one of md, csv, tex, html."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return {"md": to_markdown, "csv": to_csv, "tex": to_latex, "html": to_html}[fmt](table)


def write_table(table: Table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` in the format its suffix names (.md, .csv, .tex, .html)."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"--out: expected a file ending in {', '.join(sorted(SUFFIXES))}, got {str(path)!r}")
    write_text(path, render(table, fmt))
    return path


def to_markdown(table: Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    marks = "".join(f"[^{i + 1}]" for i in range(len(table.notes)))
    head = [cell(h) for h in table.header]
    if head and marks:
        head[0] += marks
    numeric = _numeric_columns(table)
    lines = [f"**{cell(table.title)}**", ""] if table.title else []
    lines += ["| " + " | ".join(head) + " |",
              "|" + "|".join("---:" if numeric[i] else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.cells()]
    if table.notes:
        lines.append("")
        lines += [f"[^{i + 1}]: {cell(note)}" for i, note in enumerate(table.notes)]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """CSV with full-precision numbers; the footnotes follow as '# ' lines (``pandas.read_csv(comment='#')``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in row])
    for note in table.notes:
        out.write(f"# {note}\n")
    return out.getvalue()


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    """A ``tabular`` (booktabs rules) whose first header cell carries a footnote mark per note."""
    numeric = _numeric_columns(table)
    spec = "".join("r" if numeric[i] else "l" for i in range(len(table.header)))
    head = [latex_escape(h) for h in table.header]
    if head and table.notes:
        head[0] += r"\footnotemark"
    lines = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.cells()]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\footnotetext{" + " ".join(latex_escape(n) for n in table.notes) + "}")
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    """A <table> (numbers right-aligned; in a box that scrolls sideways where the page is narrower) with its
    notes in a small paragraph under it."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td class='num'>{html.escape(c)}</td>" if _is_number(v)
                                    else f"<td>{html.escape(c)}</td>" for v, c in zip(row, cells)) + "</tr>"
                   for row, cells in zip(table.rows, table.cells()))
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table.notes)
    caption = f"<caption>{html.escape(table.title)}</caption>" if table.title else ""
    return (f"<div class='scroll'><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
            f"{notes}")


def print_table(table: Table) -> None:
    """``table`` in the terminal (rich), its notes under it."""
    from rich.console import Console
    from rich.table import Table as RichTable

    rich_table = RichTable(*table.header, title=table.title or None)
    for row in table.cells():
        rich_table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 200)      # piped: keep the rows whole
    console.print(rich_table)
    for note in table.notes:
        console.print(note, style="dim", highlight=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_columns(table: Table) -> list[bool]:
    """Per column: True when every non-empty value is a number."""
    out = []
    for i in range(len(table.header)):
        values = [row[i] for row in table.rows if i < len(row) and row[i] not in (None, "")]
        out.append(bool(values) and all(_is_number(v) for v in values))
    return out
