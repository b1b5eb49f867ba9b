"""Reading a run's results: the headline (best sampler by Fréchet distance beside prior sampling, and the
reconstruction error), the protocol each score was made under, and the changes between two runs, which
are only computed between scores made the same way."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from latentatlas import config as config_mod
from latentatlas.runs.tables import PROTOCOL_LABELS
from latentatlas.runs.store import Run, flatten

# protocol entries that make two scores incomparable when they differ
COMPARED_PROTOCOL = ("extractor", "weights_hash", "real_dataset", "real_split", "n_real", "n_fake", "n_pairs",
                     "steps")
# sections whose own entries (n_pairs, steps, extractor) are the protocol of the scores inside them
PARAMETER_SECTIONS = ("interpolation",)
# config keys that decide which images the reconstruction error is measured on (and "data seed":
# RunConfig.data_seed)
RECONSTRUCTION_PROTOCOL = ("data.name", "data.root", "data.limit", "data.image_size", "data.val_fraction",
                           "data.test_fraction", "evaluate.split")
NOT_SCORES = ("protocol", "skipped", "seed") + COMPARED_PROTOCOL
SAMPLER_SCORES = ("test_log_likelihood", "mean_log_likelihood", "fit_seconds")
UNCOMPARED_CONFIG = ("name", "parent", "runs_dir")


@dataclass
class Headline:
    """The answer at a glance.  ``best`` / ``runner_up`` / ``prior``: sampler spec and its scores (frechet,
    precision, recall, ...) or None; ``features``: the extractor the Fréchet distance is computed on;
    ``codes_method``: how the reconstruction's codes were found ('encoder' or 'inversion')."""

    best: tuple[str, dict] | None = None
    runner_up: tuple[str, dict] | None = None
    prior: tuple[str, dict] | None = None
    features: str | None = None
    protocol: dict = field(default_factory=dict)
    reconstruction: float | None = None
    codes_method: str = "encoder"
    set_aside: list[str] = field(default_factory=list)   # specs scored under another protocol (not compared)


def sampler_specs(metrics: dict[str, Any]) -> dict[str, str]:
    """The spec each fitted sampler was given, by its file stem: {'gmm_k-10': 'gmm:k=10', ...}."""
    return {stem: s.get("spec", stem) for stem, s in metrics.get("samplers", {}).items() if isinstance(s, dict)}


def headline(metrics: dict[str, Any]) -> Headline:
    """The headline of a run's metrics.json (empty parts where a stage has not run)."""
    specs = sampler_specs(metrics)
    scored = {name: r for name, r in metrics.get("evaluate", {}).items()
              if isinstance(r, dict) and _finite(r.get("frechet"))}
    out = Headline(reconstruction=metrics.get("reconstruction", {}).get("mse"),
                   codes_method=metrics.get("codes", {}).get("method", "encoder"))
    if not scored:
        return out
    scored, out.set_aside = _comparable(scored, specs)
    ranked = sorted(scored, key=lambda name: scored[name]["frechet"])
    best = ranked[0]
    if len(ranked) > 1:
        out.runner_up = (specs.get(ranked[1], ranked[1]), scored[ranked[1]])
    prior = next((n for n in scored if specs.get(n, n) == "prior"), None) or \
        next((n for n in scored if specs.get(n, n).startswith("prior")), None)
    out.best = (specs.get(best, best), scored[best])
    out.prior = (specs.get(prior, prior), scored[prior]) if prior else None
    out.protocol = dict(scored[best].get("protocol", {}))
    out.features = out.protocol.get("extractor")
    return out


def _comparable(scored: dict[str, dict], specs: dict[str, str]) -> tuple[dict[str, dict], list[str]]:
    """The scores made under one protocol (the most samplers'; on a tie the prior's, then the most generated
    images), and the specs of the others: a Fréchet distance depends on the number of images, so scores of
    2,000 samples and of 1,000 do not rank against each other."""
    def key(name: str) -> tuple:
        protocol = scored[name].get("protocol", {})
        return tuple(str(protocol.get(k)) for k in COMPARED_PROTOCOL)
    groups: dict[tuple, list[str]] = {}
    for name in scored:
        groups.setdefault(key(name), []).append(name)
    def n_fake(names: list[str]) -> float:
        value = scored[names[0]].get("protocol", {}).get("n_fake")
        return value if _number(value) else -math.inf
    chosen = max(groups.values(), key=lambda names: (
        len(names), any(specs.get(n, n) == "prior" for n in names), n_fake(names)))
    return {n: scored[n] for n in chosen}, [specs.get(n, n) for n in scored if n not in chosen]


def describe_protocol(protocol: dict[str, Any]) -> str:
    """'classifier features (weights e6b17c5f6f88), 40 real mnist test images vs 64 generated, seed 0';
    ', shipped with latentatlas' after the weights of a feature net from the package (the same everywhere)."""
    if not protocol:
        return "no protocol recorded"
    text = f"{protocol.get('extractor', '?')} features"
    if protocol.get("weights_hash"):
        source = ", shipped with latentatlas" if protocol.get("weights_source") == "shipped" else ""
        text += f" (weights {str(protocol['weights_hash'])[:12]}{source})"
    text += (f", {protocol.get('n_real', '?')} real {protocol.get('real_dataset') or ''} "
             f"{protocol.get('real_split', '')} images vs {protocol.get('n_fake', '?')} generated").replace("  ", " ")
    if "seed" in protocol:
        text += f", seed {protocol['seed']}"
    return text


def brief_protocol(protocol: dict[str, Any]) -> str:
    """'classifier, test: 40 real / 64 generated' (the protocol in a table cell)."""
    return (f"{protocol.get('extractor', '?')}, {protocol.get('real_split', '?')}: {protocol.get('n_real', '?')} "
            f"real / {protocol.get('n_fake', '?')} generated")


def scores(metrics: dict[str, Any]) -> dict[str, float]:
    """Every scalar score of metrics.json by dotted key (protocol entries, seeds and lists left out)."""
    return {k: v for k, v in flatten(metrics).items()
            if _number(v) and not any(part in NOT_SCORES for part in k.split("."))
            and not (k.split(".")[0] in PARAMETER_SECTIONS and k.rsplit(".", 1)[-1] in COMPARED_PROTOCOL)
            and (not k.startswith("samplers.") or k.rsplit(".", 1)[-1] in SAMPLER_SCORES)}


def score_protocol(metrics: dict[str, Any], key: str, config: dict[str, Any]) -> dict[str, Any]:
    """What the score at dotted ``key`` depends on: the ``protocol`` dicts and protocol entries found on the
    way down to it (evaluate, interpolation), or for reconstruction the data and split from ``config``."""
    parts = key.split(".")
    if parts[0] == "reconstruction":
        flat = flatten(config)
        return {**{k: flat.get(k) for k in RECONSTRUCTION_PROTOCOL},
                "data seed": config_mod.from_dict(config).data_seed,
                "codes": metrics.get("codes", {}).get("method", "encoder")}   # an inversion error is no encoder's
    out: dict[str, Any] = {}
    node: Any = metrics
    for part in [None, *parts[:-1]]:
        node = node if part is None else node.get(part)
        if not isinstance(node, dict):
            break
        if part in PARAMETER_SECTIONS:
            out.update({k: v for k, v in node.items() if k in COMPARED_PROTOCOL and not isinstance(v, dict)})
        if isinstance(node.get("protocol"), dict):
            out.update({k: v for k, v in node["protocol"].items() if k in COMPARED_PROTOCOL})
    return out


def protocol_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """'' when the two protocols agree, else the reason: 'feature extractor classifier vs inception; ...'."""
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return "; ".join(f"{PROTOCOL_LABELS.get(k, k)} {a.get(k)} vs {b.get(k)}" for k in keys)


@dataclass
class Change:
    """One score in two runs: ``change`` = new - old, or None with ``reason`` when they are not comparable."""

    key: str
    old: float | None
    new: float | None
    change: float | None
    reason: str = ""


def score_changes(old: Run, new: Run) -> list[Change]:
    """Every score of either run, with its change from ``old`` to ``new`` where both have it and made it
    under the same protocol; otherwise the reason why it is not subtracted."""
    old_metrics, new_metrics = old.read_metrics(), new.read_metrics()
    old_config, new_config = old.config_dict(), new.config_dict()
    a, b = scores(old_metrics), scores(new_metrics)
    out = []
    for key in dict.fromkeys([*a, *b]):
        if key not in a or key not in b:
            out.append(Change(key, a.get(key), b.get(key), None, f"only in {old.name if key in a else new.name}"))
            continue
        reason = protocol_difference(score_protocol(old_metrics, key, old_config),
                                     score_protocol(new_metrics, key, new_config))
        if reason:
            out.append(Change(key, a[key], b[key], None, f"not compared: {reason}"))
        else:
            out.append(Change(key, a[key], b[key], float(b[key] - a[key])))
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every config value that differs, except name, parent and runs_dir."""
    return [row for row in config_mod.diff(old, new) if row[0] not in UNCOMPARED_CONFIG]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _number(value) and math.isfinite(value)
