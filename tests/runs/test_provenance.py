"""Every figure written into a run folder carries its source (run, stage, config hash) in its PNG text chunks."""

import numpy as np
from PIL import Image

from latentatlas.runs.figures import save_image_grid, save_line_plot
from latentatlas.runs.figures import HASH_KEY, RUN_KEY, STAGE_KEY, config_hash, describe_source, read_source


def test_grids_and_plots_in_a_run_folder_carry_their_source(make_run, tmp_path):
    run = make_run("a", seed=5)
    images = np.zeros((4, 8, 8, 1), dtype=np.uint8)
    grid = save_image_grid(run.figure_path("samples_gmm_k-3.png"), images)
    plot = save_line_plot(run.figure_path("interp_realism.png"), {"lerp": [(0, 1.0), (1, 0.5)]}, xlabel="t", ylabel="y")
    expected_hash = config_hash(run.config_dict())
    assert read_source(grid) == {RUN_KEY: "a", STAGE_KEY: "sample", HASH_KEY: expected_hash}
    assert read_source(plot) == {RUN_KEY: "a", STAGE_KEY: "interpolate", HASH_KEY: expected_hash}
    with Image.open(grid) as image:                                     # plain tEXt chunks any reader sees
        assert image.text[RUN_KEY] == "a"
    assert describe_source(read_source(grid)) == f"run a · stage sample · config {expected_hash}"
    elsewhere = save_image_grid(tmp_path / "loose.png", images)
    assert read_source(elsewhere) == {}


def test_config_hash_ignores_names_and_places_but_not_settings(make_run):
    a = make_run("a", seed=1).config_dict()
    b = make_run("b", seed=1, parent="a", track="tensorboard").config_dict()
    c = make_run("c", seed=2).config_dict()
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert len(config_hash(a)) == 12
