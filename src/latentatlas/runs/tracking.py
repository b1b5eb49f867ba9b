"""Optional experiment trackers (``track: tensorboard`` or ``track: mlflow`` in the run config; off by default):
the training curves (metrics.jsonl) and every final score (metrics.json) of a run, sent after training and
after evaluation.  Each tracker is an optional extra, imported only when asked for.

The run folder stays the truth and the tracker's copy is derived from it: :func:`sync` can be called any
number of times.  TensorBoard writes ``<run>/tensorboard/`` anew each time (``tensorboard --logdir runs``
shows every run); MLflow logs into ``$MLFLOW_TRACKING_URI`` when set, else a local file store
``<run>/mlruns`` (``mlflow ui --backend-store-uri <run>/mlruns``), one MLflow run per run folder, adding
only the points it does not hold yet.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

from latentatlas.runs.results import scores
from latentatlas.runs.store import Run, flatten

log = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "mlflow")
EXTRAS = {"tensorboard": ("torch.utils.tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
EXPERIMENT = "latentatlas"
RUN_PATH_TAG = "latentatlas.run_path"
NOT_CURVES = ("epoch", "step")


def check_available(track: str | None) -> None:
    """Fail before any work when ``track`` names a tracker whose package is not installed."""
    if not track:
        return
    if track not in TRACKERS:
        raise ValueError(f"track: expected one of {', '.join(TRACKERS)} or nothing, got {track!r}")
    module, extra = EXTRAS[track]
    try:
        __import__(module)
    except ImportError as err:
        raise ImportError(f"track: {track} is not installed ({err}); pip install 'latentatlas[{extra}]' or "
                          "leave track unset") from err


def sync(run: Run) -> str | None:
    """Send the run's curves and scores to the tracker its config names; where they went (None: no tracker)."""
    track = run.config_dict().get("track")
    if not track:
        return None
    check_available(track)
    where = _tensorboard(run) if track == "tensorboard" else _mlflow(run)
    log.info("%s: curves and scores of %s logged to %s", track, run.name, where)
    return where


def curves(run: Run) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch series of metrics.jsonl: {'val_loss': [(epoch, value), ...], ...}."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in run.history():
        for key, value in flatten(row).items():
            if key not in NOT_CURVES and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, []).append((int(row.get("epoch", 0)), float(value)))
    return out


def final_scores(run: Run) -> dict[str, float]:
    """Every scalar score of metrics.json, keys 'section/.../name'."""
    return {key.replace(".", "/"): float(value) for key, value in scores(run.read_metrics()).items()}


def _last_epoch(series: dict[str, list[tuple[int, float]]]) -> int:
    return max((points[-1][0] for points in series.values() if points), default=0)


def _tensorboard(run: Run) -> str:
    import yaml
    from torch.utils.tensorboard import SummaryWriter

    folder = run.path / "tensorboard"
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    series = curves(run)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for key, points in series.items():
            for epoch, value in points:
                writer.add_scalar(f"curves/{key}", value, epoch)
        step = _last_epoch(series)
        for key, value in final_scores(run).items():
            writer.add_scalar(key, value, step)
        writer.add_text("config", "```\n" + yaml.safe_dump(run.config_dict(), sort_keys=False) + "```")
    finally:
        writer.close()
    return str(folder)


@contextmanager
def _file_store_allowed() -> Iterator[None]:
    """MLflow 3 refuses its file store unless asked; a run folder's own store is such a request."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def mlflow_uri(run: Run) -> str:
    """$MLFLOW_TRACKING_URI, else the run folder's own file store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (run.path / "mlruns").resolve().as_uri()


def _mlflow(run: Run) -> str:
    uri = mlflow_uri(run)
    with _file_store_allowed():
        _mlflow_log(run, uri)
    return uri


def _mlflow_log(run: Run, uri: str) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    run_id = _mlflow_run_id(client, experiment_id, run)
    held = client.get_run(run_id).data
    now = int(time.time() * 1000)
    metrics = []
    for key, points in curves(run).items():
        logged = {m.step for m in client.get_metric_history(run_id, f"curves/{key}")} if f"curves/{key}" in \
            held.metrics else set()
        metrics += [Metric(f"curves/{key}", value, now, epoch) for epoch, value in points if epoch not in logged]
    step = _last_epoch(curves(run))
    metrics += [Metric(key, value, now, step) for key, value in final_scores(run).items()
                if held.metrics.get(key) != value]
    params = [Param(k, _param(v)) for k, v in flatten(run.config_dict()).items() if k not in held.params]
    for start in range(0, len(params), 100):         # MLflow's batch limits: 100 params, 1000 metrics
        client.log_batch(run_id, params=params[start:start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    client.set_terminated(run_id)


def _mlflow_run_id(client, experiment_id: str, run: Run) -> str:
    """The MLflow run of this run folder, created on first use."""
    path = str(run.path.resolve())
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_PATH_TAG}` = '{path}'", max_results=1)
    if found:
        return found[0].info.run_id
    tags = {RUN_PATH_TAG: path, "parent": str(run.config_dict().get("parent") or "")}
    return client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
