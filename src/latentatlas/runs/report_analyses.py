"""The report's sections for the latent analyses (interpolation, geometry, attributes) and any other
metrics.json section: a few figures and a summary in view, every other number and figure folded away."""

from __future__ import annotations

from typing import Any

from latentatlas.latent import arithmetic_check as ac
from latentatlas.runs.arithmetic_analysis import pair_stem
from latentatlas.runs.report_html import columns_table, details, e, figure, quantity_table
from latentatlas.runs.report_html import table as html_table
from latentatlas.runs.store import Run

INTERPOLATION_COLUMNS = ("midpoint_fd", "step_cv", "cycle_error_mean", "realism_mean", "path_length")
GEOMETRY_SUMMARY = ("active_units", "kl_total", "hull_fraction_test", "hull_fraction_train", "pearson", "spearman",
                    "nn_agreement", "mardia_skewness_p", "mardia_kurtosis_p", "bic_best_k", "bic_best_k_at_edge",
                    "drift_from_start")
ATTRIBUTE_COLUMNS = ("auc_balanced", "auc_probe", "judge_auc_real", "judge_gain")
SECTION_FIGURE_PREFIX = {"interpolation": "interp_", "attributes": "attr_", "geometry": "geom_"}
# sections drawn elsewhere in the report
DRAWN_ELSEWHERE = ("train", "reconstruction", "samplers", "evaluate", "figures")


def analysis_sections(run: Run, metrics: dict[str, Any], captions: dict[str, str]) -> list[str]:
    """One section per latent analysis that ran, then a generic one per other section of metrics.json."""
    drawn = {"interpolation": _interpolation, "geometry": _geometry, "attributes": _attributes}
    out = []
    for section, values in metrics.items():
        if section in DRAWN_ELSEWHERE or not isinstance(values, dict):
            continue
        draw = drawn.get(section, _generic)
        out.append(draw(run, section, values, captions))
    return out


def _more_figures(run: Run, prefix: str, captions: dict[str, str], shown: tuple[str, ...]) -> str:
    names = sorted(p.name for p in run.figures_dir.glob(f"{prefix}*.png")) if run.figures_dir.is_dir() else []
    rest = "".join(figure(run.figures_dir, n, captions.get(n, "")) for n in names if n not in shown)
    return details("more figures", rest)


def _interpolation(run: Run, section: str, values: dict, captions: dict[str, str]) -> str:
    features = values.get("extractor")
    methods = {k: v for k, v in values.items() if isinstance(v, dict) and "midpoint_fd" in v}
    shown = ("interp_strips.png",)
    out = f"<h2>Interpolation</h2><p>{e(values.get('n_pairs', '?'))} random pairs of test codes, " \
          f"{e(values.get('steps', '?'))} points per path, judged on {e(features or '?')} features.</p>"
    out += figure(run.figures_dir, shown[0], captions.get(shown[0], "one interpolation strip per row"))
    out += columns_table(methods, list(INTERPOLATION_COLUMNS), first="interpolator", features=features)
    rest = {k: v for k, v in values.items() if k not in methods}
    out += details("all interpolation numbers", quantity_table(rest, features=features, fold_after=10_000)
                   + quantity_table(methods, features=features, fold_after=10_000))
    return out + _more_figures(run, "interp_", captions, shown)


def _geometry(run: Run, section: str, values: dict, captions: dict[str, str]) -> str:
    maps = sorted(p.name for p in run.figures_dir.glob("geom_map_*.png") if "_3d" not in p.name) \
        if run.figures_dir.is_dir() else []
    shown = tuple(maps[:1])
    out = "<h2>Geometry of the codes</h2>"
    if shown:
        out += figure(run.figures_dir, shown[0], captions.get(shown[0], "2-D map of test codes, coloured by label"))
    summary = {k: values[k] for k in GEOMETRY_SUMMARY if k in values
               and not (k == "bic_best_k_at_edge" and not values[k])}   # said only when it is so
    out += quantity_table(summary, fold_after=10_000)
    rest = {k: v for k, v in values.items() if k not in summary}
    out += details("all geometry numbers", quantity_table(rest, fold_after=10_000))
    return out + _more_figures(run, "geom_", captions, shown)


def _attributes(run: Run, section: str, values: dict, captions: dict[str, str]) -> str:
    per_attribute = {k: v for k, v in values.items() if isinstance(v, dict) and "auc_mean" in v}
    out = (f"<h2>Attribute directions</h2><p>Vectors from the {e(values.get('source', '?'))} by the "
           f"{e(values.get('method', '?'))} method; AUC of each as a classifier of test codes.</p>")
    out += columns_table(per_attribute, list(ATTRIBUTE_COLUMNS), first="attribute")
    shown = ("attr_judge.png",)
    out += figure(run.figures_dir, shown[0], captions.get(shown[0], ""))
    if isinstance(values.get("arithmetic"), dict):
        out += "<p>Code arithmetic: " + e(values["arithmetic"].get("expression", "")) + "</p>"
    if isinstance(values.get("pairs"), dict) and values["pairs"]:
        out += _checked_arithmetic(values["pairs"], values.get("judge"))
        stem = pair_stem(*next(iter(values["pairs"])).split("/"))
        first = [f"{stem}.png", f"{stem}_sweep.png"]
        shown += tuple(first)
        out += "".join(figure(run.figures_dir, n, captions.get(n, "")) for n in first)
    out += details("all attribute numbers", quantity_table(values, fold_after=10_000))
    return out + _more_figures(run, "attr_", captions, shown)


def _scales(res: dict) -> str:
    """The vector step scales of a checked pair, e.g. 'plain 2, balanced 2, probe 3 (fitted on training triples)'."""
    scale = res.get("step_scale", 1)
    if not isinstance(scale, dict):
        return f"{scale:g}"
    text = ", ".join(f"{k} {v:g}" for k, v in scale.items())
    return f"{text} (fitted on training triples)" if res.get("step_scale_fitted") else text


def _checked_arithmetic(pairs: dict, judge: str | None) -> str:
    """Pair x variant -> success rate and its three parts (percent +- binomial standard error)."""
    def pm(r: dict, key: str) -> str:
        return f"{100 * r[key]:.1f} ± {100 * r[key + '_se']:.1f}"

    rows, notes = [], []
    for key, res in pairs.items():
        if "skipped" in res:
            rows.append([key, "skipped: " + str(res["skipped"]), "", "", "", "", "", ""])
            continue
        for variant in (ac.BASELINE, *ac.VARIANTS):
            if isinstance(res.get(variant), dict):
                r = res[variant]
                rows.append([key, variant, pm(r, "success"), pm(r, "a_present"), pm(r, "b_absent"),
                             pm(r, "identity_kept"), pm(r, "success_vs_decoded"), r["n"]])
        notes.append(f"{key}: identity attributes {', '.join(res.get('identity_attributes', [])) or 'none'} "
                     f"(at most {res.get('max_identity_flips', '?')} may flip); balanced on "
                     f"{', '.join(res.get('balanced_on', []))}; vector steps {_scales(res)} x the group-mean gap")
    text = ("<h3>Checked arithmetic</h3><p>Triples of test codes per pair A/B: a has A and B, b has B only, c has "
            "neither. Each variant gives c the attribute A: <i>triple</i> a - b + c, <i>plain</i> / "
            "<i>balanced</i> / <i>probe</i> c plus the A vector (mean difference, mean difference balanced on "
            f"B, logistic probe). The judge ({e(judge or '?')}) must see A (p > 0.5), not see B, and keep c's "
            "identity attributes; <i>unchanged</i> is c itself, the baseline. <i>vs decoded</i>: success with "
            "B judged as on c's own decoding instead of absent (the edit did not add B; a decoder that makes c "
            "look as if it had B fails the plain success for every variant). Percent ± standard error.</p>")
    return (text + html_table(["pair A/B", "variant", "success %", "A present %", "B absent %", "identity kept %",
                               "success vs decoded %", "triples"], rows)
            + "".join(f"<p class=note>{e(n)}</p>" for n in notes))


def _generic(run: Run, section: str, values: dict, captions: dict[str, str]) -> str:
    prefix = SECTION_FIGURE_PREFIX.get(section, f"{section}_")
    names = sorted(p.name for p in run.figures_dir.glob(f"{prefix}*.png")) if run.figures_dir.is_dir() else []
    figures = "".join(figure(run.figures_dir, n, captions.get(n, "")) for n in names)
    return f"<h2>{e(section.replace('_', ' ').capitalize())}</h2>" + quantity_table(values) + figures



def study_sections(run: Run) -> list[str]:
    """One section per study in RUN/studies/: the question, the findings, the table and the plots."""
    from latentatlas.studies.runner import read_study

    out = []
    for folder in sorted((run.path / "studies").glob("*/")) if (run.path / "studies").is_dir() else []:
        if not (folder / "study.json").is_file():
            continue
        try:
            study = read_study(folder)
        except ValueError as exc:
            out.append(f"<h2>Study {e(folder.name)}</h2><p>{e(exc)}</p>")
            continue
        t = study.get("table", {})
        prefix = f"studies/{folder.name}/"
        findings = "".join(f"<li>{e(line)}</li>" for line in study.get("findings", []))
        figures = "".join(figure(folder, n, c, href_prefix=prefix) for n, c in study.get("figures", {}).items())
        notes = "".join(f"<p class=note>{e(n)}</p>" for n in t.get("notes", []))
        out.append(f"<h2>Study {e(study.get('study', folder.name))}</h2><p><b>{e(study.get('question', ''))}</b></p>"
                   f"<ul>{findings}</ul>{figures}"
                   + details(f"table ({len(t.get('rows', []))} rows, {study.get('seconds', 0):.0f} s of cells)",
                             html_table(t.get("header", []), t.get("rows", [])) + notes, open_=True))
    return out
