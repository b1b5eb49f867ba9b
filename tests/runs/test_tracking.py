"""TensorBoard and MLflow tracking (`track:` in the config) against their local stores; skipped where the
package is absent.  A sync can be repeated without duplicating anything."""

import sys

import pytest

from latentatlas import config as config_mod
from latentatlas.runs import tracking

HISTORY = [{"epoch": 1, "step": 5, "train_loss": 9.0, "val_loss": 8.0}, {"epoch": 2, "step": 10, "train_loss": 7.0,
                                                                           "val_loss": 6.5}]


def test_tracking_is_off_by_default_and_checked(make_run):
    run = make_run("a", history=HISTORY)
    assert run.config.track is None and tracking.sync(run) is None
    assert not (run.path / "tensorboard").exists() and not (run.path / "mlruns").exists()
    with pytest.raises(ValueError, match="track: expected one of 'tensorboard', 'mlflow', got 'wandb'"):
        config_mod.from_dict({"track": "wandb"})


def test_a_missing_tracker_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r"track: mlflow is not installed .*pip install 'latentatlas\[mlflow\]'"):
        tracking.check_available("mlflow")


def test_tensorboard_gets_curves_and_final_scores(make_run):
    pytest.importorskip("tensorboard", reason="track: tensorboard needs pip install 'latentatlas[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = make_run("a", history=HISTORY, frechet={"prior": 30.0}, mse=0.02, track="tensorboard")
    assert tracking.sync(run) == str(run.path / "tensorboard")
    assert tracking.sync(run) == str(run.path / "tensorboard")          # again: written anew, not appended
    assert len(list((run.path / "tensorboard").glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("curves/val_loss")] == [(1, 8.0), (2, 6.5)]
    assert [(e.step, e.value) for e in events.Scalars("evaluate/prior/frechet")] == [(2, 30.0)]
    assert events.Scalars("reconstruction/mse")[0].value == pytest.approx(0.02)


def test_mlflow_gets_one_run_per_folder_without_duplicates(make_run, monkeypatch):
    pytest.importorskip("mlflow", reason="track: mlflow needs pip install 'latentatlas[mlflow]'")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")          # for the client reading the store below
    from mlflow.tracking import MlflowClient

    run = make_run("a", history=HISTORY, frechet={"prior": 30.0}, track="mlflow", parent="base")
    uri = tracking.sync(run)
    assert uri == (run.path / "mlruns").resolve().as_uri()
    run.update_metrics("evaluate", {"prior": {**run.read_metrics()["evaluate"]["prior"], "frechet": 25.0}})
    tracking.sync(run)
    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs([client.get_experiment_by_name("latentatlas").experiment_id])
    assert len(found) == 1 and found[0].info.run_name == "a" and found[0].data.tags["parent"] == "base"
    history = client.get_metric_history(found[0].info.run_id, "curves/val_loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 8.0), (2, 6.5)]
    assert found[0].data.metrics["evaluate/prior/frechet"] == 25.0            # the newest value
    assert found[0].data.params["model.family"] == "vae"


def test_training_with_track_writes_the_curves(tmp_path):
    pytest.importorskip("tensorboard", reason="track: tensorboard needs pip install 'latentatlas[tensorboard]'")
    from latentatlas.runs import pipeline

    config = config_mod.from_dict({
        "name": "tracked", "runs_dir": str(tmp_path), "track": "tensorboard", "data": {"name": "mnist", "limit": 200},
        "model": {"family": "ae", "latent_dim": 2, "width": 4},
        "train": {"epochs": 2, "max_steps": 4, "batch_size": 32, "progress": False, "device": "cpu"}})
    run = pipeline.train_stage(config)
    assert len(list((run.path / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert run.history() and tracking.curves(run)["val_loss"][0][0] == 1
