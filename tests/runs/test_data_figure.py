"""A CelebA run shows its crop: figures/data_crop.png is written at training and shown in the report."""

from __future__ import annotations

from latentatlas import config as config_mod
from latentatlas.runs import pipeline
from latentatlas.runs.figures import read_source
from latentatlas.runs.report import write_report
from tests.data.test_files import write_celeba


def test_celeba_run_draws_its_crop(tmp_path):
    root = write_celeba(tmp_path / "faces", n=12, as_tar=True)
    cfg = config_mod.from_dict({
        "name": "faces", "runs_dir": str(tmp_path / "runs"), "seed": 0,
        "data": {"name": "celeba", "root": str(root), "image_size": 16, "test_fraction": 0.2},   # 2 to score on
        "model": {"family": "ae", "latent_dim": 2, "width": 4}, "train": {"epochs": 1, "progress": False}})
    run = pipeline.train_session(cfg).run
    figure = run.figure_path("data_crop.png")
    assert figure.is_file() and read_source(figure)["latentatlas:stage"] == "train"
    assert "data_crop.png" in write_report(run).read_text()
