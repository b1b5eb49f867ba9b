"""Checked attribute arithmetic on synthetic codes: the 'decoder' is the identity and the judge sees
attribute j iff code coordinate j > 0, so every success, flip and rate can be worked out by hand."""

import numpy as np
import pytest
import torch

from latentatlas.latent import arithmetic_check as ac
from latentatlas.rng import make_generator
from latentatlas.runs.arithmetic_analysis import parse_pairs

NAMES = ["A", "B", "I1", "I2"]


def threshold_judge(codes: torch.Tensor) -> np.ndarray:
    """Probability 1 where the coordinate is positive, else 0 (one column per coordinate)."""
    return (codes.double().numpy() > 0).astype(np.float64)


def test_rates_on_hand_made_triples():
    zc = torch.tensor([[-1, -1, 1, 1], [-1, -1, 1, -1], [-1, -1, -1, -1], [-1, -1, 1, 1.0]])
    move = torch.tensor([[2, 0, 0, 0],             # -> ( 1, -1,  1,  1): A, not B, no flip: success
                         [2, 2, 0, 0],             # -> ( 1,  1,  1, -1): B turns on
                         [0.5, 0, 3, 0],           # -> (-.5, -1,  2, -1): A missing, I1 flips
                         [2, 0, -3, -3.0]])        # -> ( 1, -1, -2, -2): I1 and I2 flip
    za, zb = move, torch.zeros_like(move)
    steps = {"plain": np.array([2.0, 0, 0, 0]), "balanced": np.array([2.0, 3.0, 0, 0])}
    out = ac.check_triples(threshold_judge, NAMES, za, zb, zc, steps, ("A", "B"), ["I1", "I2"], max_flips=1)
    se = np.sqrt(0.75 * 0.25 / 4)
    t = out["triple"]
    assert t["n"] == 4
    assert (t["a_present"], t["b_absent"], t["identity_kept"], t["success"]) == (0.75, 0.75, 0.75, 0.25)
    assert t["success_se"] == pytest.approx(se) and t["a_present_se"] == pytest.approx(se)
    assert t["mean_identity_flips"] == pytest.approx((0 + 0 + 1 + 2) / 4)
    # c unchanged: A never present, B always absent, identity kept by definition
    u = out[ac.BASELINE]
    assert (u["a_present"], u["b_absent"], u["identity_kept"], u["success"], u["success_se"]) == (0, 1, 1, 0, 0)
    assert out["plain"]["success"] == 1.0                      # c + (2, 0, 0, 0): A on, nothing else moves
    assert out["balanced"]["b_absent"] == 0.0 and out["balanced"]["success"] == 0.0   # (2, 3, ...) turns B on
    strict = ac.check_triples(threshold_judge, NAMES, za, zb, zc, steps, ("A", "B"), ["I1", "I2"], max_flips=0)
    assert strict["triple"]["identity_kept"] == 0.5 and strict["triple"]["success"] == 0.25


def test_judge_checks_count_flips_against_c():
    probs_c = np.array([[0.1, 0.1, 0.9, 0.2, 0.8]])
    probs = np.array([[0.9, 0.2, 0.1, 0.7, 0.8]])           # identity columns 2, 3, 4: two flip
    out = ac.judge_checks(probs, probs_c, 0, 1, [2, 3, 4], max_flips=1)
    assert out["flips"].tolist() == [2] and not out["identity_kept"][0] and not out["success"][0]
    assert ac.judge_checks(probs, probs_c, 0, 1, [2, 3, 4], max_flips=2)["success"][0]
    assert ac.judge_checks(probs, probs_c, 0, 1, [4], max_flips=0)["success"][0]


def test_b_judged_against_c_s_decoding():
    probs_c = np.array([[0.1, 0.8, 0.9], [0.1, 0.2, 0.9], [0.1, 0.8, 0.9]])     # rows 0, 2: c decodes with B
    probs = np.array([[0.9, 0.7, 0.9], [0.9, 0.7, 0.9], [0.9, 0.3, 0.9]])
    out = ac.judge_checks(probs, probs_c, 0, 1, [2], max_flips=0)
    assert out["b_absent"].tolist() == [False, False, True] and out["success"].tolist() == [False, False, True]
    assert out["b_as_decoded"].tolist() == [True, False, False]           # row 1 added B, row 2 removed it
    assert out["success_vs_decoded"].tolist() == [True, False, False]


def test_identity_attributes_leave_out_the_pair_and_the_hair_group():
    names = list(ac.IDENTITY_ATTRIBUTES) + ["Smiling"]
    smiling = ac.identity_attributes(names, "Smiling", "Male")
    assert "Male" not in smiling and "Smiling" not in smiling and "Blond_Hair" in smiling and "Young" in smiling
    blond = ac.identity_attributes(names, "Blond_Hair", "Young")
    assert set(blond) == set(ac.IDENTITY_ATTRIBUTES) - set(ac.HAIR) - {"Young"}
    assert ac.identity_attributes(["Smiling", "Male", "Eyeglasses"], "Smiling", "Male") == ["Eyeglasses"]


def correlated_codes(n=2600, agree=0.9, seed=0):
    """Codes whose coordinate j is 3 * attribute_j - 1.5 plus noise (sd 0.5) for Smiling, Male, Eyeglasses,
    then two noise coordinates; Smiling and Male agree on ``agree`` of the rows, so the plain Smiling
    vector carries Male with it (by 3 * (2 agree - 1) = 2.4 along the Male axis)."""
    rng = np.random.default_rng(seed)
    smiling = rng.random(n) < 0.5
    male = np.where(rng.random(n) < agree, smiling, ~smiling)
    glasses = rng.random(n) < 0.3
    table = np.stack([smiling, male, glasses], axis=1).astype(np.int8)
    z = np.concatenate([3.0 * table - 1.5 + 0.5 * rng.normal(size=(n, 3)), rng.normal(size=(n, 2))], axis=1)
    return torch.from_numpy(z).float(), table


def sigmoid_judge(codes: torch.Tensor) -> np.ndarray:
    return torch.sigmoid(8 * codes[:, :3].double()).numpy()


def _evaluate(seed=0, n_triples=200, step_scale=1.0, **kwargs):
    z, table = correlated_codes()
    names = ["Smiling", "Male", "Eyeglasses"]
    return ac.evaluate_pair(z, table, names, ("Smiling", "Male"), train_rows=np.arange(2000),
                            test_rows=np.arange(2000, 2600), judge_codes=sigmoid_judge, judge_names=names,
                            generator=make_generator(seed), balance_on=("Eyeglasses",), n_triples=n_triples,
                            scales=(0, 1, 2), n_sweep=50, step_scale=step_scale, seed=0, **kwargs)


def test_balanced_vector_beats_the_plain_one_when_the_pair_is_correlated():
    check = _evaluate()
    m = check.metrics
    assert m["balanced_on"] == ["Male", "Eyeglasses"] and m["identity_attributes"] == ["Eyeglasses"]
    assert m["n_triples"] == 200 and min(m["groups"].values()) > 20
    np.testing.assert_allclose(check.steps["plain"][:2], [3.0, 2.4], atol=0.25)    # Male leaks in
    np.testing.assert_allclose(check.steps["balanced"][:2], [3.0, 0.0], atol=0.25)
    assert m["plain"]["b_absent"] < 0.2 and m["plain"]["success"] < 0.2
    assert m["balanced"]["success"] > 0.9 and m["balanced"]["identity_kept"] > 0.95
    assert m["triple"]["success"] > 0.8
    assert m[ac.BASELINE]["a_present"] < 0.05 and m[ac.BASELINE]["b_absent"] > 0.95
    for variant in ac.VARIANTS:
        r = m[variant]
        assert r["success"] <= min(r["a_present"], r["b_absent"], r["identity_kept"])
        assert r["success_se"] == pytest.approx(np.sqrt(r["success"] * (1 - r["success"]) / 200))
    sweep = m["sweep"]
    assert sweep["scales"] == [0, 1, 2]
    assert sweep["balanced"]["p_a"][0] < 0.1 < 0.9 < sweep["balanced"]["p_a"][1]
    assert sweep["balanced"]["p_b"][2] < 0.1 < 0.9 < sweep["plain"]["p_b"][2]     # plain turns Male on


def test_triples_come_from_their_groups_and_are_deterministic():
    z, table = correlated_codes()
    first, again, other = _evaluate(seed=3), _evaluate(seed=3), _evaluate(seed=4)
    np.testing.assert_array_equal(first.triples, again.triples)
    assert first.metrics == again.metrics
    assert not np.array_equal(first.triples, other.triples)
    t = first.triples
    assert (t >= 2000).all()                                                 # test rows only
    assert (table[t[:, 0], :2] == [1, 1]).all() and (table[t[:, 1], :2] == [0, 1]).all()
    assert (table[t[:, 2], :2] == [0, 0]).all()
    doubled = _evaluate(seed=3, step_scale=2.0)
    for name in ac.VECTOR_VARIANTS:                                          # steps scale, sweeps do not
        np.testing.assert_allclose(doubled.steps[name], 2 * first.steps[name])
    assert doubled.metrics["sweep"] == first.metrics["sweep"]
    assert doubled.metrics["step_scale"] == dict.fromkeys(ac.VECTOR_VARIANTS, 2.0)
    with pytest.raises(ValueError, match="group"):
        ac.draw_triples({"a": np.arange(3), "b": np.array([], dtype=int), "c": np.arange(2)}, 5, make_generator(0))


def test_fitted_step_scale_is_chosen_on_training_triples():
    """A judge that sees Smiling only beyond 3 (c sits at -1.5, one gap of 3 reaches 1.5): one gap fails,
    a scale fitted on training triples (2 or 3: -1.5 + 6 = 4.5) succeeds on the test triples."""
    z, table = correlated_codes()
    names = ["Smiling", "Male", "Eyeglasses"]

    def late_judge(codes: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(8 * (codes[:, :3].double() - torch.tensor([3.0, 0.0, 0.0]))).numpy()

    def check(step_scale):
        return ac.evaluate_pair(z, table, names, ("Smiling", "Male"), train_rows=np.arange(2000),
                                test_rows=np.arange(2000, 2600), judge_codes=late_judge, judge_names=names,
                                generator=make_generator(0), n_triples=200, step_scale=step_scale).metrics
    one, fitted = check(1.0), check(None)
    assert fitted["step_scale_fitted"] and fitted["step_scale"]["balanced"] >= 2.0
    assert one["balanced"]["success"] < 0.1 < 0.9 < fitted["balanced"]["success"]
    assert not one["step_scale_fitted"] and one["step_scale"]["balanced"] == 1.0
    assert fitted["step_scale_at_grid_top"] == [] and one["step_scale_at_grid_top"] == []


def test_a_scale_at_the_top_of_the_grid_is_flagged(caplog):
    """A judge that sees Smiling only beyond 2.5 (c at -1.5 needs more than 4/3 gaps of 3): of the grid
    (1, 1.5) the top is best, which is reported and logged."""
    z, table = correlated_codes()
    names = ["Smiling", "Male", "Eyeglasses"]

    def far_judge(codes: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(8 * (codes[:, :3].double() - torch.tensor([2.5, 0.0, 0.0]))).numpy()

    m = ac.evaluate_pair(z, table, names, ("Smiling", "Male"), train_rows=np.arange(2000),
                         test_rows=np.arange(2000, 2600), judge_codes=far_judge, judge_names=names,
                         generator=make_generator(0), n_triples=200, fit_scales=(1.0, 1.5)).metrics
    assert m["step_scale"]["balanced"] == 1.5 and "balanced" in m["step_scale_at_grid_top"]
    assert "largest tried" in caplog.text


def test_bad_input_names_the_parameter():
    names = ["Smiling", "Male", "Eyeglasses"]
    for bad in (["Smiling/Nope"], ["Smiling"], ["Male/Male"], ["Smiling/Male/Eyeglasses"]):
        with pytest.raises(ValueError, match="--pair"):
            parse_pairs(bad, names, "attributes")
    with pytest.raises(ValueError, match="--pair.*class label"):
        parse_pairs(["label_0/label_1"], ["label_0", "label_1"], "labels")
    assert parse_pairs(["Eyeglasses/Male"], names, "attributes") == [("Eyeglasses", "Male")]
    assert parse_pairs(None, names, "attributes") == [("Smiling", "Male"), ("Eyeglasses", "Male")]
    assert parse_pairs(None, ["label_0", "label_1"], "labels") == []
    with pytest.raises(ValueError, match="n_triples"):
        _evaluate(n_triples=0)
    with pytest.raises(ValueError, match="step_scale"):
        _evaluate(step_scale=0.0)
    with pytest.raises(ValueError, match="fit_scales"):
        _evaluate(step_scale=None, fit_scales=(1.0, 0.0))
    z, table = correlated_codes(n=200)
    with pytest.raises(ValueError, match="judge"):
        ac.evaluate_pair(z, table, names, ("Smiling", "Male"), train_rows=np.arange(100), test_rows=np.arange(100, 200),
                         judge_codes=sigmoid_judge, judge_names=["Smiling"], generator=make_generator(0))
