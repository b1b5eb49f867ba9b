"""Fixtures of the run-folder tests: run folders made in a moment (config, env, metrics, history written
directly, no training) for listing, lineage, comparison, export and tracking."""

from __future__ import annotations

import json

import pytest

from latentatlas import config as config_mod
from latentatlas.runs.store import Run


def scores_section(frechet: dict[str, float], *, extractor: str = "classifier", n_fake: int = 64,
                   n_real: int = 40) -> dict:
    """An 'evaluate' section: the Fréchet distance (and precision/recall) of each sampler, one protocol."""
    protocol = {"extractor": extractor, "weights_hash": f"{extractor}-w", "real_dataset": "mnist",
                "real_split": "test", "n_real": n_real, "n_fake": n_fake, "seed": 0}
    return {name: {"frechet": fd, "precision": 0.5, "recall": 0.25 + 0.01 * i, "protocol": protocol}
            for i, (name, fd) in enumerate(frechet.items())}


@pytest.fixture
def evaluate_section():
    """scores_section(frechet, extractor=..., n_fake=..., n_real=...) -> an 'evaluate' section of metrics.json."""
    return scores_section


@pytest.fixture
def make_run(tmp_path):
    """make_run(name, frechet={'prior': 30.0, ...}, mse=0.02, history=[...], **config) -> Run in tmp_path/runs."""
    runs_dir = tmp_path / "runs"

    def make(name: str, *, frechet: dict[str, float] | None = None, mse: float | None = None,
             history: list[dict] | None = None, evaluate: dict | None = None, **config) -> Run:
        run = Run.create(config_mod.from_dict({"name": name, "runs_dir": str(runs_dir), **config}))
        if frechet or evaluate:
            evaluate = evaluate or scores_section(frechet)
            specs = {n: {"spec": n.replace("gmm_k-", "gmm:k="), "test_log_likelihood": -3.0} for n in evaluate}
            run.update_metrics("samplers", specs)
            run.update_metrics("evaluate", evaluate)
        if mse is not None:
            run.update_metrics("reconstruction", {"mse": mse, "psnr": 20.0})
        if history:
            run.history_path.write_text("".join(json.dumps(row) + "\n" for row in history))
            run.update_metrics("train", {"epochs_run": len(history), "selection_metric": "val_loss"})
        return run

    make.runs_dir = runs_dir
    return make
