"""report.html: one self-explaining page per run.  At the top the answer (headline numbers, protocol one click
away), then lineage (parent, children, what changed), notes, what was run, training, samplers, sample
quality and the latent analyses; tables fit a 1280 px window and long ones fold away."""

from __future__ import annotations

from pathlib import Path

from latentatlas.fileio import write_text
from latentatlas.runs.figures import config_hash, save_health_figure, save_line_plot
from latentatlas.runs.notes import run_tags
from latentatlas.runs.report_analyses import analysis_sections, study_sections
from latentatlas.runs.report_html import (columns_table, details, e, figure, page, protocol_table, quantity_table,
                                          table, transposed_table)
from latentatlas.runs.report_overview import answer_section, lineage_section, notes_section
from latentatlas.runs.results import sampler_specs
from latentatlas.runs.store import Run, flatten

QUALITY_COLUMNS = ("frechet", "frechet_inf", "precision", "recall", "density", "coverage", "kid",
                   "classes_covered", "attribute_gap", "attributes_missing")
ATTRIBUTE_ROWS = 8   # attributes with the largest rate gaps shown in the report's attribute coverage table


def write_report(run: Run) -> Path:
    """Render report.html for ``run`` (figures are referenced relative to the run folder)."""
    _training_curves(run)
    metrics = run.read_metrics()
    captions = metrics.get("figures", {})
    parts = [_header(run), answer_section(run, metrics), lineage_section(run), notes_section(run), _what_was_run(run),
             _training(run, metrics), _samplers(run, metrics, captions), _evaluation(metrics),
             *analysis_sections(run, metrics, captions), *study_sections(run)]
    write_text(run.report_path, page(f"{run.name} — latentatlas", parts))
    return run.report_path


def _header(run: Run) -> str:
    env = run.env()
    tags = "".join(f"<span class='tag'>{e(t)}</span>" for t in run_tags(run))
    return (f"<h1>{e(run.name)} {tags}</h1><p class='muted'>created {e(env.get('created', '?'))} · "
            f"latentatlas {e(env.get('latentatlas', '?'))} · torch {e(env.get('torch', '?'))} · "
            f"{'CUDA: ' + e(env['cuda_device']) if env.get('cuda_device') else 'CPU'} · "
            f"git {e((env.get('git_revision') or 'unknown')[:10])} · config {config_hash(run.config_dict())}</p>")


def _what_was_run(run: Run) -> str:
    cfg = run.config_dict()
    rows = [[k, v] for k, v in flatten(cfg).items()]
    return (f"<h2>What was run</h2><p>Data <b>{e(cfg['data']['name'])}</b>, model <b>{e(cfg['model']['family'])}</b> "
            f"with a {e(cfg['model']['latent_dim'])}-dimensional latent space, seed {e(cfg['seed'])}. "
            f"Command: <code>{e(run.env().get('command', '?'))}</code></p>"
            + details("Full configuration", table(["key", "value"], rows))
            + details("Environment", quantity_table(run.env(), fold_after=10_000)))


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


def _training(run: Run, metrics: dict) -> str:
    folder = run.figures_dir
    out = "<h2>Training</h2>"
    out += figure(folder, "data_crop.png", "the data: source images with the crop box (red) above the images "
                  "training sees (cropped, then resized with antialiasing)")
    validated = any("val_loss" in row for row in run.history())
    out += figure(folder, "training_curves.png", "losses per epoch: " + (
        "training and validation" if validated else "training (this model has no validation loss)"))
    out += figure(folder, "training_health.png", "sample monitor: Fréchet distance, precision / recall and class "
                  "coverage of decoded prior draws per epoch (red: epochs flagged as mode collapse)")
    out += figure(folder, "codebook_usage.png", "codebook entries assigned at least once during each epoch, and "
                  "the perplexity exp(H) of their frequencies (the number of equally used codes it equals)")
    if "train" in metrics:   # the best score under the name of what it is: best val_loss, best monitor_frechet
        chosen = metrics["train"].get("selection_metric")
        out += quantity_table({(f"best_{chosen}" if k == "best_score" and chosen else k): v
                               for k, v in metrics["train"].items()})
    warnings = [(row["epoch"], row["monitor_collapse"]) for row in run.history() if row.get("monitor_collapse")]
    if warnings:
        out += "<p><b>Warnings during training:</b></p><ul>" + "".join(
            f"<li>epoch {e(epoch)}: {e(text)}</li>" for epoch, text in warnings) + "</ul>"
    if "reconstruction" in metrics:   # of inverted codes where the model has no encoder
        inverted = metrics.get("codes", {}).get("method") == "inversion"
        out += ("<h3>Reconstruction of the test images from their inverted codes</h3>" if inverted else
                "<h3>Reconstruction</h3>") + quantity_table(metrics["reconstruction"])
    out += figure(folder, "reconstructions.png", "test images (odd positions) and their reconstructions (even)")
    return out


def _samplers(run: Run, metrics: dict, captions: dict) -> str:
    samplers = {name: s for name, s in metrics.get("samplers", {}).items() if isinstance(s, dict)}
    if not samplers:
        return ""
    folder, specs = run.figures_dir, sampler_specs(metrics)
    out = "<h2>Latent samplers</h2>"
    warnings = [(specs[stem], text) for stem, s in samplers.items() for text in s.get("warnings", [])]
    if warnings:
        out += "<p><b>Warnings from the fits:</b></p><ul>" + "".join(
            f"<li>{e(spec)}: {e(text)}</li>" for spec, text in warnings) + "</ul>"
    out += "".join(figure(folder, f"samples_{stem}.png", f"64 samples from {specs[stem]}") for stem in samplers)
    by_spec = {specs[stem]: s for stem, s in samplers.items()}
    out += details("fitted samplers: every number", transposed_table(by_spec, skip=("spec", "sampler")))
    for stem in samplers:
        extra = "".join(figure(folder, f"{prefix}{stem}.png", caption) for prefix, caption in (
            ("fit_", "training curve of the learned sampler"),
            ("selection_", "model selection: information criteria per k"),
            ("selection_heldout_", "model selection: held-out log-likelihood per k"),
            ("components_", captions.get(f"components_{stem}.png", ""))))
        out += details(f"{specs[stem]}: fit figures", extra)
    return out


def _evaluation(metrics: dict) -> str:
    evaluation = {n: r for n, r in metrics.get("evaluate", {}).items() if isinstance(r, dict)}
    if not evaluation:
        return ""
    specs = sampler_specs(metrics)
    by_spec = {specs.get(n, n): r for n, r in evaluation.items()}
    protocol = next((r["protocol"] for r in by_spec.values() if "protocol" in r), {})
    features = protocol.get("extractor")
    out = "<h2>Sample quality</h2>" + columns_table(by_spec, list(QUALITY_COLUMNS), first="samples", features=features)
    out += _attribute_coverage(by_spec)
    out += details("every score per sampler", transposed_table(by_spec, features=features,
                                                               skip=("protocol", "skipped")))
    skipped = {n: r["skipped"] for n, r in by_spec.items() if r.get("skipped")}
    if skipped:
        out += details("metrics skipped", table(["samples", "metric", "why"], [
            [n, m, why] for n, reasons in skipped.items() for m, why in reasons.items()]))
    return out + details("Protocol (what these numbers depend on)", protocol_table(protocol))


def _attribute_coverage(by_spec: dict[str, dict]) -> str:
    """The face analogue of class coverage: per attribute, the share of real faces and of each sampler's
    samples that the attribute net judges to have it; the attributes with the largest gaps first."""
    rated = {n: r["attribute_rates"] for n, r in by_spec.items() if isinstance(r.get("attribute_rates"), dict)}
    if not rated:
        return ""
    first = next(iter(rated.values()))
    labelled = first.get("labelled")
    rows = []
    for i, name in enumerate(first["names"]):
        gap = max(abs(r["samples"][i] - r["real"][i]) for r in rated.values())
        shares = [*([labelled[i]] if labelled else []), first["real"][i], *(r["samples"][i] for r in rated.values())]
        rows.append((gap, [name, *(100 * v for v in shares)]))
    rows = [row for _, row in sorted(rows, key=lambda r: -r[0])]
    header = ["attribute", *(["labelled real (%)"] if labelled else []), "real faces (%)", *(f"{n} (%)" for n in rated)]
    return ("<h3>Attribute coverage</h3><p class='note'>How often each attribute occurs among the real faces and "
            "each sampler's samples, as the attribute net judges them (its mean probability: the expected share of "
            f"images with the attribute){'; and the labelled share of the real faces' if labelled else ''}: the "
            f"{ATTRIBUTE_ROWS} attributes with the largest gaps. An attribute is counted missing when its sample "
            "share is under half the real share.</p>" + table(header, rows[:ATTRIBUTE_ROWS])
            + details(f"all {len(rows)} attributes", table(header, rows)))
