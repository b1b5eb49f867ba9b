"""Words and digits for people: the names of metrics and config keys as a reader understands them, and
numbers rounded to the digits that mean something."""

from __future__ import annotations

import math
from typing import Any

# metric key (the last part of a metrics.json path) -> column name; {features} is the extractor's name
METRIC_LABELS = {
    "frechet": "Fréchet distance ({features} features)",
    "precision": "precision", "recall": "recall", "density": "density", "coverage": "coverage",
    "kid": "kernel inception distance", "kid_std": "KID std",
    "is": "classifier score (IS)", "is_std": "IS std",
    "classes_covered": "classes covered", "n_classes": "classes", "class_kl": "KL to the class shares",
    "nn_train_mean": "distance to nearest training image", "nn_train_median": "median distance to training",
    "nn_train_min": "smallest distance to training", "nn_train_ratio": "nearest-training / nearest-test ratio",
    "data_copying_z": "data-copying Z", "data_copying_cells": "cells tested", "data_copying_n_cells": "cells",
    "mse": "reconstruction error (MSE per pixel)", "psnr": "reconstruction PSNR (dB)",
    "epochs_run": "epochs", "steps": "steps", "best_score": "best selection score", "best_epoch": "best epoch",
    "seconds_per_epoch": "seconds per epoch", "train_seconds": "training seconds",
    "test_log_likelihood": "test log-likelihood per code", "fit_seconds": "fit seconds",
    "midpoint_fd": "midpoint Fréchet distance", "step_cv": "step-size variation", "cycle_error_mean":
    "decode-encode cycle error", "realism_mean": "frames inside the real manifold", "path_length": "path length",
    "active_units": "active latent units", "hull_fraction_test": "test codes inside the training hull",
    "hull_fraction_train": "held-out training codes inside the hull", "pearson": "latent-pixel distance Pearson",
    "spearman": "latent-pixel distance Spearman", "nn_agreement": "same nearest neighbour",
    "mardia_skewness_p": "Mardia skewness p", "mardia_kurtosis_p": "Mardia kurtosis p",
    "bic_best_k": "mixture components by BIC", "drift_from_start": "re-projection drift", "kl_total": "total KL",
    "auc_balanced": "AUC of the balanced vector", "auc_probe": "AUC of the probe", "judge_gain":
    "classifier gain along the vector",
}
CONFIG_LABELS = {"model.family": "family", "data.name": "data", "model.latent_dim": "latent size"}
PROTOCOL_LABELS = {"extractor": "feature extractor", "weights_hash": "extractor weights", "real_dataset":
                   "reference data set", "real_split": "reference split", "n_real": "real images",
                   "n_fake": "generated images", "seed": "seed", "k_precision_recall": "k (precision, recall)",
                   "k_density_coverage": "k (density, coverage)", "kid_subset_size": "KID subset size",
                   "classes_min_share": "least class share counted", "n_train": "training images"}


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
