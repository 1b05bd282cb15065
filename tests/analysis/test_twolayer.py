"""analysis.twolayer against synthetic data whose answers are known."""

import math

import numpy as np
import pytest
import xarray as xr

from analysis import twolayer


def _plateau_curve(time, height=0.01, escape=300.0, start=0.3):
    """A first descent to ``height`` (done by t ~ 10), a plateau, an escape at ``escape``."""
    first = height + (start - height) * np.exp(-time / 2.0)
    leave = 1.0 / (1.0 + np.exp(np.minimum((time - escape) / (0.05 * escape), 700)))
    return first * leave + 1e-9


def test_saad_solla_plateau_closed_form():
    # docs/twolayer.md §8.1
    assert twolayer.saad_solla_plateau_risk(2) == pytest.approx(0.011611, abs=1e-6)
    assert twolayer.saad_solla_plateau_risk(3) == pytest.approx(0.020297, abs=1e-6)


def test_plateau_and_escape_of_a_synthetic_trajectory():
    time = np.concatenate([[0.0], np.logspace(-1, 4, 201)])
    risk = _plateau_curve(time)
    height, t_flat = twolayer.plateau(risk, time)
    assert height == pytest.approx(0.01, rel=0.02)  # the flattest point sits on the plateau
    assert 10 < t_flat < 300
    # the logistic escape falls to half the plateau exactly at t = escape
    assert twolayer.escape_time(risk, time) == pytest.approx(300.0, rel=0.01)
    # no escape within the run: nan, not the end of the run
    short = time <= 200
    assert math.isnan(twolayer.escape_time(risk[short], time[short]))


def test_crossing_time_interpolates_a_power_law_exactly():
    time = np.logspace(0, 3, 7)  # coarse on purpose
    risk = 1.0 / time**2
    assert twolayer.crossing_time(risk, time, 1e-3) == pytest.approx(10**1.5, rel=1e-12)
    assert math.isnan(twolayer.crossing_time(risk, time, 1e-9))


def test_plateaus_vectorises_over_dims():
    time = np.concatenate([[0.0], np.logspace(-1, 4, 201)])
    escapes = [100.0, 300.0, 1000.0]
    risk = xr.DataArray(
        np.stack([_plateau_curve(time, escape=e) for e in escapes]),
        dims=("lr", "time"),
        coords={"lr": [3.0, 1.0, 0.3], "time": time},
    )
    found = twolayer.plateaus(risk)
    np.testing.assert_allclose(found.t_escape, escapes, rtol=0.01)
    np.testing.assert_allclose(found.height, 0.01, rtol=0.03)


def test_fit_power_law_recovers_slope_and_error():
    rng = np.random.default_rng(0)
    x = np.array([100, 200, 400, 800, 1600, 3200.0])
    slopes = []
    for _ in range(400):
        y = 2.0 * x**-0.5 * np.exp(0.05 * rng.standard_normal(len(x)))
        fit = twolayer.fit_power_law(x, y, 0.05 * y)
        slopes.append((fit.slope, fit.slope_error))
    slopes = np.array(slopes)
    assert slopes[:, 0].mean() == pytest.approx(-0.5, abs=0.01)
    # the quoted error is the spread of the estimates (to 15%: 400 draws, and the scaling by
    # the reduced chi-square when above one biases it up a little)
    assert slopes[:, 1].mean() == pytest.approx(slopes[:, 0].std(), rel=0.15)
    exact = twolayer.fit_power_law(x, 3 * x**-1.0)
    assert exact.slope == pytest.approx(-1.0, abs=1e-12) and exact.prefactor == pytest.approx(3.0)
    assert exact(10.0) == pytest.approx(0.3)


def test_paired_deviation_and_errors():
    time = np.linspace(0, 10, 11)
    theory = xr.DataArray(np.ones((3, 11)), dims=("seed", "time"), coords={"time": time})
    offsets = np.array([0.1, -0.1, 0.3])[:, None] * np.ones(11)
    sim = theory + offsets
    dev = twolayer.paired_deviation(theory, sim)
    np.testing.assert_allclose(dev, [0.1, 0.1, 0.3])
    np.testing.assert_allclose(twolayer.paired_deviation(theory, 2 * sim, relative=True), [1.2, 0.8, 1.6])
    assert twolayer.paired_deviation(theory, sim, t_max=5).sizes == {"seed": 3}
    # times where the theory is below the floor are left out
    low = theory.where(theory["time"] < 5, 1e-12)
    np.testing.assert_allclose(twolayer.paired_deviation(low, low + offsets, floor=1e-9), [0.1, 0.1, 0.3])
    kept = twolayer.paired_deviation(low, low * (1 + offsets), relative=True, floor=1e-9)
    np.testing.assert_allclose(kept, [0.1, 0.1, 0.3])
    mean, sigma = twolayer.deviation_in_errors(theory, sim)
    se = np.std([0.1, -0.1, 0.3], ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(mean, 0.1)
    np.testing.assert_allclose(sigma, 0.1 / se)


def test_expected_region_on_known_points():
    # docs/twolayer.md §2.3: green above the blue line, orange between it and -delta = (kappa+1)/2
    kappa = [0.5, 0.25, 0.0, 0.0, 0.2]
    delta = [0.0, -0.25 + 5.6e-17, -0.375, -0.5, -0.9]
    assert twolayer.expected_region(kappa, delta).tolist() == [1, 2, 3, 4, 4]


def test_asymptotic_risk_is_the_mean_of_the_last_times():
    risk = xr.DataArray(np.arange(10.0), dims="time")
    assert float(twolayer.asymptotic_risk(risk, last=4)) == pytest.approx(7.5)
