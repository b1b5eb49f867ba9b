"""The headline of a run, score changes refused across protocols, and `runs diff` / `runs compare` tables."""

import csv
import io
import re

import pytest

from latentatlas.cli import main
from latentatlas.runs.comparison import compare_table, diff_table
from latentatlas.runs.lineage import tree_lines
from latentatlas.runs.results import headline, score_changes


def test_headline_is_the_best_sampler_beside_prior_sampling(make_run):
    run = make_run("a", frechet={"prior": 30.0, "gmm_k-10": 12.5, "kde": 20.0}, mse=0.02)
    head = headline(run.read_metrics())
    assert head.best[0] == "gmm:k=10" and head.best[1]["frechet"] == 12.5
    assert head.prior[0] == "prior" and head.features == "classifier" and head.reconstruction == 0.02
    assert head.set_aside == [] and head.runner_up[0] == "kde"
    assert headline({}).best is None


def test_the_answer_shows_the_runner_up_a_close_call_and_which_way_is_better(make_run):
    from latentatlas.runs.report import write_report

    run = make_run("close", frechet={"prior": 30.0, "gmm_k-10": 12.5, "kde": 12.9}, mse=0.02)
    html = write_report(run).read_text()
    top = html[html.index("class='answer'"):html.index("Lineage")]
    assert "kde scores within 10% of it (12.9): on another draw the order may not hold" in top
    assert "<td>second</td><td>kde</td>" in top and "<td>prior sampling</td><td>prior</td>" in top
    assert "<th>Fréchet distance (classifier features) ↓</th><th>precision ↑</th>" in top
    far = make_run("far", frechet={"prior": 30.0, "gmm_k-10": 12.5, "kde": 20.0})
    assert "within 10%" not in write_report(far).read_text()


def test_the_answer_names_an_inversion_error_and_a_collapse_the_monitor_saw(make_run):
    from latentatlas.runs.report import write_report

    history = [{"epoch": 1, "step": 10, "train_loss": 1.0},
               {"epoch": 2, "step": 20, "train_loss": 1.0, "monitor_collapse": "3 of 10 classes covered"}]
    run = make_run("gan", frechet={"prior": 30.0}, mse=0.02, history=history)
    run.update_metrics("codes", {"method": "inversion"})
    run.update_metrics("train", {"selection_metric": "monitor_frechet", "best_score": 118.7})
    html = write_report(run).read_text()
    top = html[html.index("class='answer'"):html.index("Lineage")]
    assert "inversion error <b>0.02</b>" in top and "reconstruction error" not in top
    assert "the sample monitor flagged mode collapse in 1 of 2 epochs (epoch 2: 3 of 10 classes covered)" in top
    # the training section names the score that picked best.pt, and says the curves hold no validation loss
    assert "<td>best monitor Fréchet distance (picks best.pt; prior draws, the monitor&#x27;s images) ↓</td>" in html
    assert "losses per epoch: training (this model has no validation loss)" in html
    assert "<h3>Reconstruction of the test images from their inverted codes</h3>" in html


def test_the_headline_ranks_only_the_samplers_scored_under_one_protocol(make_run, evaluate_section):
    """A sampler scored on 2,000 images beside others on 64: the Fréchet distances do not rank together."""
    from latentatlas.runs.report import write_report

    evaluate = {**evaluate_section({"prior": 30.0, "kde": 20.0}),
                **evaluate_section({"gmm_k-10": 12.5}, n_fake=2000)}
    run = make_run("a", evaluate=evaluate)
    head = headline(run.read_metrics())
    assert head.best[0] == "kde" and head.prior[0] == "prior" and head.set_aside == ["gmm:k=10"]
    assert head.protocol["n_fake"] == 64
    assert "not ranked with these: gmm:k=10, scored under another protocol" in write_report(run).read_text()
    alone = make_run("b", evaluate={**evaluate_section({"prior": 30.0}), **evaluate_section({"kde": 20.0},
                                                                                              n_fake=2000)})
    assert headline(alone.read_metrics()).best[0] == "prior"   # one each: the prior's protocol
    assert headline(alone.read_metrics()).set_aside == ["kde"]
    larger = make_run("c", evaluate={**evaluate_section({"kde": 20.0}), **evaluate_section({"gmm_k-3": 25.0},
                                                                                           n_fake=2000)})
    assert headline(larger.read_metrics()).best[0] == "gmm:k=3"   # neither holds the prior: more images


def test_changes_are_subtracted_only_under_the_same_protocol(make_run, evaluate_section):
    old = make_run("old", frechet={"prior": 30.0}, mse=0.02)
    same = make_run("same", frechet={"prior": 25.0}, mse=0.03)
    changes = {c.key: c for c in score_changes(old, same)}
    assert changes["evaluate.prior.frechet"].change == -5.0
    assert changes["reconstruction.mse"].change == pytest.approx(0.01)
    other = make_run("other", evaluate=evaluate_section({"prior": 10.0}, extractor="inception", n_fake=500),
                     data={"limit": 400}, mse=0.01)
    changes = {c.key: c for c in score_changes(old, other)}
    refused = changes["evaluate.prior.frechet"]
    assert refused.change is None and refused.old == 30.0 and refused.new == 10.0
    assert "feature extractor classifier vs inception" in refused.reason
    assert "generated images 64 vs 500" in refused.reason
    assert changes["reconstruction.mse"].change is None
    assert "data.limit None vs 400" in changes["reconstruction.mse"].reason


def test_reconstruction_errors_are_compared_only_on_the_same_split(make_run):
    old = make_run("old", mse=0.02)
    reseeded = make_run("reseeded", mse=0.03, seed=1)                          # another split
    assert next(c for c in score_changes(old, reseeded) if c.key == "reconstruction.mse").reason == \
        "not compared: data seed 0 vs 1"
    inverted = make_run("inverted", mse=0.03)                                  # a GAN's error: its inversion's
    inverted.update_metrics("codes", {"method": "inversion"})
    assert next(c for c in score_changes(old, inverted) if c.key == "reconstruction.mse").reason == \
        "not compared: codes encoder vs inversion"
    replicate = make_run("replicate", mse=0.03, seed=1, data={"split_seed": 0})  # the same split
    assert next(c for c in score_changes(old, replicate) if c.key == "reconstruction.mse").change == \
        pytest.approx(0.01)


def test_diff_table_lists_config_changes_then_score_changes(make_run):
    old = make_run("old", frechet={"prior": 30.0}, mse=0.02)
    new = make_run("new", frechet={"prior": 25.0, "kde": 20.0}, mse=0.03, model={"kl_weight": 4.0}, parent="old")
    table = diff_table(old, new)
    assert table.header == ["quantity", "old", "new", "change (new - old)"]
    assert table.rows[0] == ["config: model.kl_weight", 1.0, 4.0, ""]
    assert ["Fréchet distance (classifier features), prior", 30.0, 25.0, -5.0] in table.rows
    assert table.rows[-1][-1] == "only in new"                    # scores of one run only come last
    assert table.notes == ["Protocol: classifier features (weights classifier-w), 40 real mnist test images "
                           "vs 64 generated, seed 0."]


def test_compare_table_shows_what_varies_and_the_headline_scores(make_run):
    runs = [make_run(f"z{d}", frechet={"prior": 40.0 - d}, mse=0.1 / d, model={"latent_dim": d}) for d in (2, 4, 8)]
    table = compare_table(runs)
    assert table.header == ["quantity", "z2", "z4", "z8"]
    assert table.rows[0] == ["config: model.latent_dim", 2, 4, 8]
    labels = [row[0] for row in table.rows]
    assert "Fréchet distance (classifier features), prior" in labels
    assert "reconstruction error (MSE per pixel)" in labels
    assert not any("log-likelihood" in label for label in labels)           # only with all_scores
    assert any("log-likelihood" in row[0] for row in compare_table(runs, all_scores=True).rows)


def test_a_setting_left_to_auto_compares_as_what_training_chose(make_run):
    """Two runs of one config (train.precision and train.device "auto") trained on machines that chose
    differently differ in the comparisons; runs that chose alike do not; an untrained run stays "auto"."""
    auto = {"precision": "auto", "device": "auto"}
    amx = make_run("amx", frechet={"prior": 30.0}, train=auto)
    plain = make_run("plain", frechet={"prior": 30.0}, train=auto, parent="amx")
    other = make_run("other", frechet={"prior": 30.0}, train=auto)
    for run, chosen in ((amx, "bf16"), (plain, "fp32"), (other, "bf16")):
        run.update_metrics("train", {"precision": chosen, "device": "cpu"})
    assert amx.config_dict()["train"]["precision"] == "auto"                 # config.yaml as written
    assert ["config: train.precision", "auto (bf16)", "auto (fp32)", ""] in diff_table(amx, plain).rows
    rows = compare_table([amx, plain, other]).rows
    assert rows[0] == ["config: train.precision", "auto (bf16)", "auto (fp32)", "auto (bf16)"]
    assert not any(row[0].startswith("config:") for row in compare_table([amx, other]).rows)
    assert "└── plain  (train.precision: auto (bf16) -> auto (fp32))" in tree_lines(make_run.runs_dir)
    untrained = make_run("untrained", train={"precision": "auto"})
    assert untrained.compared_config()["train"]["precision"] == "auto"


def test_cli_diff_and_compare_export(make_run, tmp_path, capsys):
    a = make_run("a", frechet={"prior": 30.0}, mse=0.02)
    b = make_run("b", frechet={"prior": 20.0}, mse=0.01, seed=3)
    assert main(["runs", "diff", str(a.path), str(b.path), "--format", "csv"]) == 0
    rows = [r for r in csv.reader(io.StringIO(capsys.readouterr().out)) if r and not r[0].startswith("#")]
    assert ["config: seed", "0", "3", ""] in rows
    assert ["Fréchet distance (classifier features), prior", "30.0", "20.0", "-10.0"] in rows
    out = tmp_path / "exports" / "table.tex"
    assert main(["compare", str(a.path), str(b.path), "--out", str(out)]) == 0      # the `compare` alias
    assert "\\begin{tabular}" in out.read_text() and "\\footnotetext{Protocol: classifier" in out.read_text()
    assert main(["runs", "compare", str(a.path)]) == 2
    assert capsys.readouterr().err.strip().endswith("runs: expected at least 2 runs to compare, got 1")


def test_the_compare_page_plots_the_model_and_training_settings_first(make_run, tmp_path):
    """Two runs that differ in 5 settings: the 4 plots go to what changes the model before how it was sampled,
    lists last (before: the first 4 alphabetically, evaluate.* and sample.* first)."""
    from latentatlas.runs.compare_page import write_compare_page

    a = make_run("a", frechet={"prior": 30.0}, mse=0.02, sample={"n": 500, "samplers": ["prior"]},
                 model={"latent_dim": 8}, train={"lr": 1e-3, "epochs": 2})
    b = make_run("b", frechet={"prior": 20.0}, mse=0.01, sample={"n": 600, "samplers": ["prior", "kde"]},
                 model={"latent_dim": 16}, train={"lr": 2e-3, "epochs": 3})
    html = write_compare_page([a, b], tmp_path / "compare.html").read_text()
    plotted = re.findall(r"alt='headline scores against ([^']+)'", html)
    assert plotted == ["model.latent_dim", "train.epochs", "train.lr", "sample.n"]
    assert "Not plotted: sample.samplers." in html


def test_a_setting_absent_from_one_run_and_an_empty_one_read_differently(make_run):
    from latentatlas.runs.comparison import _cell

    assert (_cell(None), _cell(""), _cell(0), _cell([1])) == ("(not set)", "(empty)", 0, "[1]")


def test_a_vae_loss_and_a_gan_monitor_are_drawn_on_axes_of_their_own(make_run, tmp_path):
    from latentatlas.runs.compare_page import write_compare_page

    vae = make_run("vae", history=[{"epoch": 1, "val_loss": 120.0}, {"epoch": 2, "val_loss": 110.0}])
    gan = make_run("gan", history=[{"epoch": 1, "monitor_frechet": 200.0}, {"epoch": 2, "monitor_frechet": 90.0}])
    gan.update_metrics("train", {"selection_metric": "monitor_frechet"})
    html = write_compare_page([vae, gan], tmp_path / "compare.html").read_text()
    caption = re.search(r"alt='(the score that picks best.pt[^']*)'", html).group(1)
    assert caption == "the score that picks best.pt, per epoch: validation loss, monitor Fréchet distance " \
        "(prior draws)"                                         # one plot each


def test_a_high_precision_beside_a_coverage_near_zero_is_called_out(make_run, evaluate_section):
    """A collapsed GAN: every sample in the k-NN balls of a few outlying real images, precision 0.986."""
    from latentatlas.runs.report import write_report

    evaluate = evaluate_section({"prior": 486.0})
    evaluate["prior"].update(precision=0.986, recall=0.0, coverage=0.004)
    html = write_report(make_run("collapsed", evaluate=evaluate)).read_text()
    assert "but its precision 0.986 comes with coverage 0.004: the samples sit in the wide neighbourhoods" in html
    evaluate["prior"].update(coverage=0.6)
    assert "comes with coverage" not in write_report(make_run("healthy", evaluate=evaluate)).read_text()
