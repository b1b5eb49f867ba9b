import json

import numpy as np
import pytest
import torch

from latentatlas import config as c
from latentatlas.runs.figures import image_grid
from latentatlas.runs.store import Run, list_runs, safe_name


def make_run(tmp_path, name, **overrides):
    cfg = c.from_dict({"name": name, "runs_dir": str(tmp_path), **overrides})
    return Run.create(cfg)


def test_create_writes_config_and_env_and_refuses_to_overwrite(tmp_path):
    run = make_run(tmp_path, "a", seed=7)
    assert run.config.seed == 7
    env = json.loads((run.path / "env.json").read_text())
    assert env["seed"] == 7 and env["torch"] == torch.__version__
    assert make_run(tmp_path, "a", seed=8).config.seed == 8   # no checkpoint yet: a failed attempt, taken over
    run.checkpoint_path("last").parent.mkdir()
    run.checkpoint_path("last").write_bytes(b"")
    with pytest.raises(FileExistsError, match="already exists"):
        make_run(tmp_path, "a")


def test_open_rejects_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        Run.open(tmp_path)


def test_samples_are_uint8_nhwc_arr_0(tmp_path):
    run = make_run(tmp_path, "a")
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    path = run.save_samples("gmm:k=3", imgs)
    assert path.name == "gmm_k-3.npz" and run.sample_names() == ["gmm_k-3"]
    with np.load(path) as f:
        assert f.files == ["arr_0", "content_sha256"] and np.array_equal(f["arr_0"], imgs)
    with pytest.raises(ValueError, match="expected uint8"):
        run.save_samples("x", imgs.astype(np.float32))


def test_metrics_merge_by_section(tmp_path):
    run = make_run(tmp_path, "a")
    run.update_metrics("evaluate", {"prior": {"fd": 3.0}})
    run.update_metrics("evaluate", {"gmm": {"fd": 1.0}})
    assert run.read_metrics() == {"evaluate": {"prior": {"fd": 3.0}, "gmm": {"fd": 1.0}}}


def test_list_runs_and_parent(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", model={"kl_weight": 4.0}, parent="a")
    a.update_metrics("reconstruction", {"mse": 0.02})
    b.update_metrics("reconstruction", {"mse": 0.03})
    assert [r.name for r in list_runs(tmp_path)] == ["a", "b"]
    assert b.parent().name == "a"


def test_safe_name():
    assert safe_name("gmm:k=50,covariance=diag") == "gmm_k-50_covariance-diag"


def test_image_grid_places_images_row_major():
    imgs = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    imgs[1] = 100
    grid = image_grid(imgs, nrow=2, pad=1)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1, 1)
    assert (grid[1:3, 4:6] == 100).all() and (grid[1:3, 1:3] == 0).all() and (grid[4:6, 1:3] == 0).all()
    assert grid[0, 0, 0] == 255 and (grid[4:6, 4:6] == 255).all()  # padding and the empty cell are white
