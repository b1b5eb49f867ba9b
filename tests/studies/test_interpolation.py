"""The interpolation study: closed forms with a linear decoder (the straight line is the geodesic: geodesic and
learned paths are as long as it, every other path is longer; far from the origin slerp is lerp), and two tiny
trained runs through the CLI giving one table in the first run's folder."""

import csv
import json

import pytest
import torch

from latentatlas.cli import main
from latentatlas.latent.interpolate import lerp, steps
from latentatlas.runs.tables import fmt_number
from latentatlas.studies import STUDIES, Judge, StudyContext, load_settings, run_study

SETTINGS = ["n_pairs=40", "geodesic_iters=200", "learned_iters=150", "n_real=200"]


def linear_context(folder, name: str, seed: int, offset: float = 0.0) -> StudyContext:
    """Codes N(offset, I) in 3-D decoded by a fixed linear map to 6-D "images" (float64)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 6, generator=g, dtype=torch.float64)
    codes = {s: torch.randn(n, 3, generator=g, dtype=torch.float64) + offset
             for s, n in (("train", 300), ("val", 50), ("test", 200))}
    judge = Judge(lambda x: x, codes["test"] @ a, codes["train"] @ a)
    return StudyContext(name=name, seed=seed, folder=folder / name, codes=codes, judge=judge,
                        decode=lambda z: z @ a.to(z.dtype))


def test_linear_decoder_closed_forms(tmp_path):
    centred, far = linear_context(tmp_path, "centred", 0), linear_context(tmp_path, "far", 1, offset=200.0)
    settings = load_settings("interpolation", overrides=SETTINGS)
    result = run_study("interpolation", [centred, far], settings)
    methods = ("lerp", "slerp", "norm", "geodesic", "learned", "iterated")
    assert [(r["run"], r["method"]) for r in result.rows] == [(c, m) for c in ("centred", "far") for m in methods]
    assert result.folder == tmp_path / "centred" / "studies" / "interpolation"
    assert not (tmp_path / "far" / "studies").exists()
    rows = {(r["run"], r["method"]): r for r in result.rows}
    study = STUDIES.get("interpolation")(settings)
    for ctx in (centred, far):
        z0, z1 = study.pairs(ctx)
        straight = ctx.decode(z1 - z0).norm(dim=1).mean()          # the decoded segment's length
        lerp_row = rows[ctx.name, "lerp"]
        assert lerp_row["path_length"] == pytest.approx(float(straight), rel=1e-9)
        assert lerp_row["step_cv"] == pytest.approx(0, abs=1e-9) and lerp_row["length_vs_lerp"] == 1
        # for a linear decoder the straight line is the geodesic: no path is shorter, the optimised ones match it
        for m in methods:
            assert rows[ctx.name, m]["length_vs_lerp"] >= 1 - 1e-9, m
        assert rows[ctx.name, "geodesic"]["length_vs_lerp"] == pytest.approx(1, abs=1e-4)
        assert rows[ctx.name, "geodesic"]["step_cv"] == pytest.approx(0, abs=1e-2)
        assert rows[ctx.name, "learned"]["length_vs_lerp"] == pytest.approx(1, abs=1e-2)
        assert rows[ctx.name, "iterated"]["length_vs_lerp"] > 1.05      # a detour through two more codes
        # the decoded start codes are the same for every method
        for m in methods:
            assert rows[ctx.name, m]["endpoint_fd"] == pytest.approx(lerp_row["endpoint_fd"], rel=1e-6), m
    # 200 code-spreads from the origin every pair is nearly collinear with it: slerp and norm are lerp
    for m in ("slerp", "norm"):
        assert rows["far", m]["length_vs_lerp"] == pytest.approx(1, abs=1e-4)
        assert rows["far", m]["midpoint_fd"] == pytest.approx(rows["far", "lerp"]["midpoint_fd"], rel=1e-2)
    # near the origin slerp keeps the norm up: its midpoints have more spread than lerp's, like real codes
    assert rows["centred", "slerp"]["midpoint_fd"] < rows["centred", "lerp"]["midpoint_fd"]
    # findings quote the table: the best method by midpoint FD and by length, the length ratios
    for run, (fd_line, ratio_line) in zip(("centred", "far"), zip(result.findings[::2], result.findings[1::2])):
        mine = [r for r in result.rows if r["run"] == run]
        by_fd = min(mine, key=lambda r: r["midpoint_fd"])
        assert fd_line.startswith(f"{run}: the best midpoints come from {by_fd['method']} (Fréchet distance "
                                  f"{fmt_number(by_fd['midpoint_fd'])}")
        assert f"shortest paths from {min(mine, key=lambda r: r['path_length'])['method']}" in fd_line
        assert f"(length ratio {fmt_number(rows[run, 'geodesic']['length_vs_lerp'], 4)})" in ratio_line
    assert (result.folder / "interpolation.png").is_file() and (result.folder / "interpolation_realism.png").is_file()


def test_the_midpoint_is_the_middle_frame(tmp_path):
    ctx = linear_context(tmp_path, "one", 0)
    study = STUDIES.get("interpolation")(load_settings("interpolation", overrides=["n_pairs=300", "steps=5"]))
    z0, z1 = study.pairs(ctx)
    frames = ctx.decode(lerp(z0, z1, steps(5, dtype=z0.dtype)).reshape(-1, 3)).reshape(300, 5, -1)
    measured = study.measure(ctx, frames)
    direct = ctx.judge.score(ctx.decode((z0 + z1) / 2))["frechet"]
    assert measured["midpoint_fd"] == pytest.approx(direct, rel=1e-9)
    assert len(measured["inside_curve"]) == 5


def test_settings_are_checked():
    with pytest.raises(ValueError, match="interpolation.steps"):
        load_settings("interpolation", overrides=["steps=8"])
    with pytest.raises(ValueError, match="interpolation.methods"):
        load_settings("interpolation", overrides=["methods=[lerp,bezier]"])


def test_two_tiny_runs_through_the_cli(tmp_path, run_maker):
    first, second = run_maker(tmp_path, name="tiny-a"), run_maker(tmp_path, name="tiny-b", seed=1)
    assert main(["study", "interpolation", str(first), str(second), "--set", "n_pairs=12", "--set", "steps=5",
                 "--set", "geodesic_iters=5", "--set", "learned_iters=5", "--set", "n_real=200"]) == 0
    folder = first / "studies" / "interpolation"
    assert not (second / "studies" / "interpolation").exists()
    with open(folder / "table.csv") as fh:
        table = [row for row in csv.reader(fh) if row and not row[0].startswith("#")]    # notes are comments
    methods = ["lerp", "slerp", "norm", "geodesic", "learned", "iterated"]
    assert [row[:2] for row in table[1:]] == [[r, m] for r in ("tiny-a", "tiny-b") for m in methods]
    saved = json.loads((folder / "study.json").read_text())
    assert saved["runs"] == ["tiny-a", "tiny-b"] and len(saved["findings"]) == 4
    rows = {(r[0], r[1]): r for r in saved["table"]["rows"]}
    header = saved["table"]["header"]
    for run in ("tiny-a", "tiny-b"):
        assert rows[run, "lerp"][header.index("length / straight")] == 1
        start = rows[run, "lerp"][header.index("start-frame FD")]
        for m in methods:                # every method starts at the same decoded codes
            assert rows[run, m][header.index("start-frame FD")] == pytest.approx(start, rel=1e-4), m
