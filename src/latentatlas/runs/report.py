"""report.html: one self-explaining page per run: what was run, how it differs from its parent run,
training curves, reconstructions, samples per sampler, and every metrics table."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from latentatlas import config as config_mod
from latentatlas.fileio import write_text
from latentatlas.runs.figures import save_health_figure, save_line_plot
from latentatlas.runs.store import Run, flatten

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f5f5f5} td:first-child{white-space:nowrap} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top} figcaption{font-size:.85em;color:#555;max-width:520px}
img{image-rendering:pixelated;max-width:520px} .muted{color:#777} code{background:#f5f5f5;padding:0 .2em}
details{margin:.5em 0} .scroll{overflow-x:auto}
"""

# metrics.json sections rendered by dedicated code; any other section gets a generic table + its figures
KNOWN_SECTIONS = ("train", "reconstruction", "samplers", "evaluate", "figures")
SECTION_FIGURE_PREFIX = {"interpolation": "interp_", "attributes": "attr_", "geometry": "geom_"}


def write_report(run: Run) -> Path:
    """Render report.html for ``run`` (figures are referenced relative to the run folder)."""
    _training_curves(run)
    metrics = run.read_metrics()
    captions = metrics.get("figures", {})
    parts = [_header(run), _what_was_run(run), _parent_diff(run), _training(run, metrics, captions),
             _samplers(run, metrics, captions), _evaluation(metrics)]
    for section, values in metrics.items():
        if section not in KNOWN_SECTIONS:
            prefix = SECTION_FIGURE_PREFIX.get(section, f"{section}_")
            parts.append(f"<h2>{_e(section.capitalize())}</h2>" + _table_from_dict(values)
                         + _figures(run, prefix, captions))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(run.name)} — latentatlas</title>"
            f"<style>{CSS}</style></head><body>{''.join(p for p in parts if p)}</body></html>\n")
    write_text(run.report_path, page)
    return run.report_path


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        return _e(text if len(text) < 120 else text[:117] + "...")
    return _e(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td class='num'>{_fmt(v)}</td>" if isinstance(v, (int, float)) and not isinstance(v, bool)
        else f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _table_from_dict(values: dict[str, Any], fold_after: int = 20) -> str:
    """A quantity/value table of the scalars in ``values``; long tables are folded, lists left out."""
    flat = flatten(values) if isinstance(values, dict) else {"value": values}
    rows = [[k, v] for k, v in flat.items() if not isinstance(v, (list, dict))]
    table = _table(["quantity", "value"], rows)
    if len(rows) > fold_after:
        return f"<details><summary>{len(rows)} numbers</summary>{table}</details>"
    return table


def _figure(run: Run, name: str, caption: str = "") -> str:
    path = run.figures_dir / name
    if not path.is_file():
        return ""
    return (f"<figure><img src='figures/{_e(name)}' alt='{_e(name)}'>"
            f"<figcaption>{_e(caption or name)}</figcaption></figure>")


def _figures(run: Run, prefix: str, captions: dict[str, str]) -> str:
    if not run.figures_dir.is_dir():
        return ""
    return "".join(_figure(run, p.name, captions.get(p.name, "")) for p in sorted(run.figures_dir.glob(f"{prefix}*.png")))


def _header(run: Run) -> str:
    env = run.env()
    return (f"<h1>{_e(run.name)}</h1><p class='muted'>created {_e(env.get('created', '?'))} · "
            f"latentatlas {_e(env.get('latentatlas', '?'))} · torch {_e(env.get('torch', '?'))} · "
            f"{'CUDA: ' + _e(env['cuda_device']) if env.get('cuda_device') else 'CPU'} · "
            f"git {_e((env.get('git_revision') or 'unknown')[:10])}</p>"
            f"<p>Command: <code>{_e(env.get('command', '?'))}</code></p>")


def _what_was_run(run: Run) -> str:
    cfg = run.config_dict()
    rows = [[k, v] for k, v in flatten(cfg).items()]
    return (f"<h2>What was run</h2><p>Data <b>{_e(cfg['data']['name'])}</b>, model <b>{_e(cfg['model']['family'])}</b> "
            f"with a {_e(cfg['model']['latent_dim'])}-dimensional latent space, seed {_e(cfg['seed'])}.</p>"
            f"<details><summary>Full configuration</summary>{_table(['key', 'value'], rows)}</details>"
            f"<details><summary>Environment</summary>{_table_from_dict(run.env())}</details>")


def _parent_diff(run: Run) -> str:
    parent_name = run.config_dict().get("parent")
    if not parent_name:
        return "<h2>Parent run</h2><p class='muted'>This run has no parent run.</p>"
    parent = run.parent()
    if parent is None:
        return f"<h2>Parent run</h2><p>Parent <code>{_e(parent_name)}</code> was not found beside this run.</p>"
    changes = [row for row in config_mod.diff(parent.config_dict(), run.config_dict()) if row[0] not in ("name", "parent")]
    body = _table(["key", f"parent ({parent.name})", "this run"], [list(r) for r in changes]) if changes \
        else "<p>Same configuration as the parent.</p>"
    old, new = flatten(parent.read_metrics()), flatten(run.read_metrics())
    shared = [[k, old[k], new[k]] for k in sorted(set(old) & set(new))
              if isinstance(new[k], (int, float)) and not isinstance(new[k], bool) and "protocol" not in k]
    metric_table = _table(["metric", "parent", "this run"], shared) if shared else ""
    return f"<h2>How it differs from its parent <code>{_e(parent.name)}</code></h2>{body}{metric_table}"


def _training_curves(run: Run) -> None:
    history = run.history()
    if not history:
        return
    series: dict[str, list[tuple[float, float]]] = {}
    for row in history:
        for key, value in flatten(row).items():
            if "loss" in key and key != "best_val_loss" and isinstance(value, (int, float)):
                series.setdefault(key, []).append((row.get("epoch", len(series)), float(value)))
    if series:
        save_line_plot(run.figure_path("training_curves.png"), series, xlabel="epoch", ylabel="loss per image")
    if any("monitor_frechet" in row for row in history):
        save_health_figure(run.figure_path("training_health.png"), history)
    usage = [row for row in history if "codebook_codes_used" in row]
    if usage:
        save_line_plot(run.figure_path("codebook_usage.png"), {
            "codes in use": [(row["epoch"], row["codebook_codes_used"]) for row in usage],
            "perplexity": [(row["epoch"], row["codebook_perplexity"]) for row in usage]},
            xlabel="epoch", ylabel="codes", title="codebook usage over each epoch")


def _training(run: Run, metrics: dict, captions: dict) -> str:
    out = "<h2>Training</h2>"
    if "train" in metrics:
        out += _table_from_dict(metrics["train"])
    out += _figure(run, "training_curves.png", "training and validation loss per epoch")
    out += _figure(run, "training_health.png", "sample monitor: Fréchet distance, precision / recall and class "
                   "coverage of decoded prior draws per epoch (red: epochs flagged as mode collapse)")
    out += _figure(run, "codebook_usage.png", "codebook entries assigned at least once during each epoch, and "
                   "the perplexity exp(H) of their frequencies (the number of equally used codes it equals)")
    warnings = [(row["epoch"], row["monitor_collapse"]) for row in run.history() if row.get("monitor_collapse")]
    if warnings:
        out += "<p><b>Warnings during training:</b></p><ul>" + "".join(
            f"<li>epoch {_e(epoch)}: {_e(text)}</li>" for epoch, text in warnings) + "</ul>"
    if "reconstruction" in metrics:
        out += "<h3>Reconstruction</h3>" + _table_from_dict(metrics["reconstruction"])
    out += _figure(run, "reconstructions.png", "test images (odd positions) and their reconstructions (even)")
    return out


def _samplers(run: Run, metrics: dict, captions: dict) -> str:
    samplers = metrics.get("samplers", {})
    if not samplers:
        return ""
    out = "<h2>Latent samplers</h2>"
    scalar_keys = sorted({k for s in samplers.values() for k, v in s.items()
                          if isinstance(v, (int, float, str)) and k != "spec"})
    out += _table(["sampler", *scalar_keys], [[s.get("spec", name), *[s.get(k, "") for k in scalar_keys]]
                                              for name, s in samplers.items()])
    for stem, summary in samplers.items():
        name = summary.get("spec", stem)
        out += f"<h3>{_e(name)}</h3>"
        out += _figure(run, f"samples_{stem}.png", f"64 samples from {name}")
        out += _figure(run, f"fit_{stem}.png", "training curve of the learned sampler")
        out += _figure(run, f"selection_{stem}.png", "model selection: information criteria per k")
        out += _figure(run, f"selection_heldout_{stem}.png", "model selection: held-out log-likelihood per k")
        out += _figure(run, f"components_{stem}.png", captions.get(f"components_{stem}.png", ""))
    return out


def _evaluation(metrics: dict) -> str:
    evaluation = metrics.get("evaluate", {})
    if not evaluation:
        return ""
    specs = {stem: summary.get("spec", stem) for stem, summary in metrics.get("samplers", {}).items()}
    rows, keys, protocol = [], [], None
    for name, result in evaluation.items():
        flat = {k: v for k, v in flatten(result).items() if not k.startswith(("protocol", "skipped"))}
        keys.extend(k for k in flat if k not in keys and isinstance(flat[k], (int, float)))
        protocol = protocol or result.get("protocol")
        rows.append((specs.get(name, name), flat))
    table = _table(["samples", *keys], [[name, *[flat.get(k, "") for k in keys]] for name, flat in rows])
    proto = ("<details><summary>Protocol (what these numbers depend on)</summary>"
             f"{_table_from_dict(protocol)}</details>") if protocol else ""
    return f"<h2>Sample quality</h2>{table}{proto}"
