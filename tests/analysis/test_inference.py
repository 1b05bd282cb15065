"""analysis.inference on synthetic stores with a known answer."""

import numpy as np
import pytest
import xarray as xr

import sweeper
from analysis.inference import (
    best_ridge,
    excess_over_bayes,
    fixed_param,
    last_change,
    located,
    overlapping,
    paired_excess,
    recovery_bracket,
    separated,
    state_evolution_gap,
    success_fractions,
    teacher_comparison,
)
from sweeper.grid_file import parse_spec

GRID = """
kernel = "ode"
name = "synthetic"
seeds = 4
[params]
K = 1
M = 1
[sweep]
lr = [1.0, 2.0, 3.0]
[refine]
axes = ["lr"]
levels = 1
output = "risk"
reduce = "last"
below = 0.5
"""


def _refined_store(risk_last: np.ndarray, status: np.ndarray) -> xr.Dataset:
    """A store over lr (the finest values 1, 1.5, ..., 3) and 4 seeds, as sweeper.open gives it."""
    lr = [1.0, 1.5, 2.0, 2.5, 3.0]
    coords = {"lr": lr, "seed": np.arange(4), "time": [0.0, 1.0]}
    risk = np.stack([np.ones_like(risk_last), risk_last], axis=-1)
    ds = xr.Dataset(
        {
            "risk": (("lr", "seed", "time"), risk),
            "status": (("lr", "seed"), status.astype(np.int8)),
        },
        coords=coords,
        attrs={"grid_text": GRID},
    )
    return ds.assign(ok=ds.status == 1)


def test_success_fractions_count_the_refine_criterion():
    risk = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    status = np.ones((5, 4))
    status[1] = 3  # not needed: not computed, not counted
    status[4, 3] = 2  # failed: counted as a computed seed that did not succeed
    f = success_fractions(_refined_store(risk, status))
    assert f.k.values.tolist() == [0, 0, 3, 4, 3]
    assert f.n.values.tolist() == [4, 0, 4, 4, 4]
    assert np.isnan(f.fraction.values[1]) and f.fraction.values[2] == 0.75
    assert np.all(f.low.values[[0, 2, 3, 4]] <= f.fraction.values[[0, 2, 3, 4]])


def test_located_is_the_first_crossing_of_sweeper_thresholds():
    risk = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    ds = _refined_store(risk, np.ones((5, 4)))
    found = located(ds)
    assert (found["lower"], found["upper"]) == (1.5, 2.0)
    assert found["estimate"] == pytest.approx(1.5 + 0.5 * (0.5 / 0.75))  # linear to fraction 1/2
    assert found["estimate"] == float(sweeper.thresholds(ds).estimate.isel(crossing=0))


def test_fixed_param_reads_the_grid_text():
    ds = _refined_store(np.zeros((5, 4)), np.ones((5, 4)))
    assert fixed_param(ds, "K") == 1 == parse_spec(GRID).fixed["K"]


def test_separated_needs_strictly_ordered_intervals():
    assert separated([(0.9, 1.0), (1.1, 1.2), (2.0, 3.0)])
    assert not separated([(0.9, 1.1), (1.1, 1.2)])  # touching is not separated
    assert not separated([(1.1, 1.2), (0.9, 1.0)])
    assert not separated([(0.9, 1.0), (np.nan, 1.2)])


def test_state_evolution_gap_per_d():
    theory = xr.DataArray([0.1, 0.5, 0.9], dims="iteration", coords={"iteration": [0, 1, 2]})
    offsets = np.array([[0.1, -0.1, 0.3], [0.01, 0.01, 0.01]])  # seed means 0.1 and 0.01 off
    m = theory.values[None, None, :] + offsets[:, :, None] * np.array([0, 1, 1])[None, None, :]
    ds = xr.Dataset(
        {"m": (("d", "seed", "iteration"), m), "ok": (("d", "seed"), np.ones((2, 3), bool))},
        coords={"d": [100, 1000], "seed": [0, 1, 2], "iteration": [0, 1, 2]},
    )
    gap = state_evolution_gap(ds, theory)
    assert gap[100] == pytest.approx(0.1 * 2 / 3) and gap[1000] == pytest.approx(0.01 * 2 / 3)
    # per seed: |0.1| + |-0.1| + |0.3| over 3 seeds at d = 100, on 2 of 3 iterations
    single = state_evolution_gap(ds, theory, per_seed=True)
    assert single[100] == pytest.approx(0.5 / 3 * 2 / 3) and single[1000] == pytest.approx(0.01 * 2 / 3)


def test_best_ridge_picks_the_least_seed_mean_error():
    error = np.array([[[0.3, 0.3], [0.2, 0.22], [0.25, 0.25]], [[0.1, 0.1], [0.12, 0.12], [0.2, 0.2]]])
    ds = xr.Dataset(
        {
            "test_error": (("alpha", "ridge", "seed"), error),
            "ok": (("alpha", "ridge", "seed"), np.ones((2, 3, 2), bool)),
        },
        coords={"alpha": [1.0, 2.0], "ridge": [0.01, 0.1, 1.0], "seed": [0, 1]},
    )
    best = best_ridge(ds)
    assert best.ridge.values.tolist() == [0.1, 0.01]
    assert best.error.values == pytest.approx([0.21, 0.1])
    assert best.error_sem.values[0] == pytest.approx(
        0.02 / np.sqrt(2) / np.sqrt(2)
    )  # std 0.02/sqrt 2, over sqrt 2


def test_recovery_bracket_of_a_deterministic_line():
    alpha = [0.9, 1.0, 1.1, 1.2, 1.3]
    ds = xr.Dataset(
        {
            "mse": (("alpha", "seed"), [[0.5], [0.3], [0.2], [0.0], [0.0]]),
            "ok": (("alpha", "seed"), np.ones((5, 1), bool)),
        },
        coords={"alpha": alpha, "seed": [0]},
    )
    found = recovery_bracket(ds, "mse", 1e-10)
    assert (found["lower"], found["upper"], found["estimate"]) == (1.1, 1.2, pytest.approx(1.15))
    assert np.isnan(recovery_bracket(ds, "mse", -1.0)["estimate"])  # never below
    failed = ds.assign(ok=ds.ok.copy(data=[[True], [True], [True], [False], [True]]))
    assert (
        recovery_bracket(failed, "mse", 1e-10)["lower"] == 1.1
        and recovery_bracket(failed, "mse", 1e-10)["upper"] == 1.3
    )


TEACHER_GRID = """
kernel = "sgd_multipass"
name = "synthetic_teacher"
seeds = 4
[sweep]
teacher_seed = [-1, 0, 1]
alpha = [1.0, 2.0, 3.0]
[refine]
axes = ["alpha"]
levels = 1
output = "m"
reduce = "last"
above = 0.9
"""


def test_overlapping_intervals():
    assert overlapping((1.0, 2.0), (2.0, 3.0)) and overlapping((1.0, 3.0), (1.5, 2.0))
    assert not overlapping((1.0, 2.0), (2.5, 3.0)) and not overlapping((1.0, np.nan), (1.0, 2.0))


def test_teacher_comparison_of_a_fresh_and_two_fixed_teachers():
    # successes of 4 seeds at alpha = 1, 1.5, ..., 3: fresh crosses 1/2 in [1.5, 2], teacher 0 in
    # [2, 2.5], teacher 1 in [1, 1.5]
    k = np.array([[0, 1, 3, 4, 4], [0, 0, 1, 3, 4], [1, 3, 4, 4, 4]])
    m = (np.arange(4)[None, None, :] < k[:, :, None]).astype(float)  # the first k seeds recover
    ds = xr.Dataset(
        {
            "m": (("teacher_seed", "alpha", "seed", "time"), np.stack([np.zeros_like(m), m], axis=-1)),
            "status": (("teacher_seed", "alpha", "seed"), np.ones(m.shape, np.int8)),
        },
        coords={"teacher_seed": [-1, 0, 1], "alpha": [1.0, 1.5, 2.0, 2.5, 3.0], "seed": np.arange(4)},
        attrs={"grid_text": TEACHER_GRID},
    )
    ds = ds.assign(ok=ds.status == 1)
    out = teacher_comparison(ds)
    assert (out["fresh"]["lower"], out["fresh"]["upper"]) == (1.5, 2.0)
    assert sorted(out["fixed"]) == [0, 1]
    fixed = [out["fixed"][0]["estimate"], out["fixed"][1]["estimate"]]
    assert fixed[0] == pytest.approx(2.0 + 0.5 * (0.25 / 0.5)) and fixed[1] == pytest.approx(1.0 + 0.5 * 0.5)
    assert out["fixed_mean"] == pytest.approx(np.mean(fixed))
    assert out["fixed_spread"] == pytest.approx(np.std(fixed, ddof=1))
    assert out["max_shift"] == pytest.approx(max(abs(f - out["fresh"]["estimate"]) for f in fixed))
    assert out["bands_overlap"]  # 4 seeds: no fraction's Wilson interval excludes 1/2 but 0 and 1


def _logistic_store(error: np.ndarray) -> xr.Dataset:
    """A store over alpha (2), ridge (2), seed (3), time (2) with ``test_error`` = ``error``."""
    coords = {"alpha": [1.0, 8.0], "ridge": [0.01, 1.0], "seed": [0, 1, 2], "time": [0.0, 1.0]}
    return xr.Dataset(
        {"test_error": (tuple(coords), error), "ok": (("alpha", "ridge", "seed"), np.ones((2, 2, 3), bool))},
        coords=coords,
    )


def test_excess_over_bayes_is_relative_with_the_seed_error():
    error = np.zeros((2, 2, 3, 2))
    error[..., -1] = np.array([[[0.25, 0.26, 0.27], [0.3, 0.3, 0.3]], [[0.05, 0.06, 0.07], [0.1, 0.1, 0.1]]])
    bayes = xr.DataArray([0.5, 0.25, 0.05], dims="alpha", coords={"alpha": [0.5, 1.0 + 1e-12, 8.0]})
    ex = excess_over_bayes(_logistic_store(error), bayes)
    assert ex.excess.sel(alpha=1.0).values == pytest.approx([0.26 / 0.25 - 1, 0.2])
    assert ex.excess.sel(alpha=8.0).values == pytest.approx([0.2, 1.0])
    assert float(ex.excess_sem.sel(alpha=8.0, ridge=0.01)) == pytest.approx(0.01 / np.sqrt(3) / 0.05)
    with pytest.raises(KeyError):  # an alpha the reference lacks is an error, not a neighbour
        excess_over_bayes(_logistic_store(error), bayes.sel(alpha=[0.5, 8.0]))


def test_paired_excess_cancels_what_the_seeds_share():
    error = np.zeros((2, 2, 3, 2))
    seed_effect = np.array([0.1, 0.2, 0.3])  # each data set's own difficulty, shared by both ridges
    error[:, 0, :, -1] = seed_effect
    error[:, 1, :, -1] = seed_effect + 0.05
    p = paired_excess(_logistic_store(error), "ridge", 1.0, 0.01)
    assert p["mean"].values == pytest.approx([0.05, 0.05]) and np.all(p["sem"].values < 1e-12)


def test_last_change_against_the_seed_error():
    error = np.zeros((2, 2, 3, 2))
    error[..., 0] = 0.2
    error[..., 1] = np.array([0.19, 0.2, 0.21])  # seed error 0.01/sqrt 3, mean moved by 0
    error[1, 1, :, 1] += 0.001  # one point still moving by 0.001
    found = last_change(_logistic_store(error))
    assert found["largest"] == pytest.approx(0.011)
    assert found["largest_of_mean"] == pytest.approx(0.001)
    assert found["relative_to_sem"] == pytest.approx(0.001 / (0.01 / np.sqrt(3)))
