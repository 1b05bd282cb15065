"""analysis.singlelayer against synthetic data with a known answer."""

import json

import numpy as np
import pytest
import xarray as xr

from analysis.singlelayer import (
    effective_temperature,
    fdt_curve,
    fraction_above,
    ridge_closed_form,
    sign_test_error_mc_bound,
    susceptibility,
)
from kernels.singlelayer.closed_forms import ridge_gd_curves


def _two_time(values, times):
    return xr.DataArray(values, dims=("time", "time2"), coords={"time": times, "time2": times})


def _ou_exact(k, temperature, eta, n, kick):
    """Stationary discrete Ornstein-Uhlenbeck x' = (1 - k eta) x + sqrt(2 T eta) xi, exactly.

    C(lag) = v a^lag with v = 2 T / (k (2 - k eta)); the response to a field in the step at t'
    is a^(lag - 1) (dmft convention), to a kick of the state at t' a^lag (sgd_multipass's).
    """
    a = 1 - k * eta
    times = eta * np.arange(n)
    lag = np.subtract.outer(np.arange(n), np.arange(n))
    v = 2 * temperature / (k * (2 - k * eta))
    C = v * a ** np.abs(lag)
    R = np.where(lag >= (0 if kick else 1), a ** (lag - (0 if kick else 1)).clip(0), 0.0)
    return _two_time(C, times), _two_time(R, times)


@pytest.mark.parametrize("kick", [False, True])
def test_effective_temperature_of_the_discrete_ou_process_is_exact(kick):
    # the discrete process breaks the FDT at first order in the step: chi = dC (2 - k eta) / (2 T)
    # at every lag, so the fit must return T_eff = 2 T / (2 - k eta) to round-off
    k, temperature, eta = 1.5, 0.3, 0.05
    C, R = _ou_exact(k, temperature, eta, 120, kick)
    found = float(effective_temperature(C, R, at=5.0, max_lag=3.0, kick=kick))
    assert found == pytest.approx(2 * temperature / (2 - k * eta), rel=1e-10)
    curve = fdt_curve(C, R, at=5.0, max_lag=3.0, kick=kick)
    assert curve.sizes["lag"] == 61 and float(curve.chi.sel(lag=0.0)) == 0.0
    # chi(lag) = (1 - a^L) / k, the geometric sum of the responses
    lag = curve.lag.values
    np.testing.assert_allclose(curve.chi, (1 - (1 - k * eta) ** np.rint(lag / eta)) / k, rtol=1e-10)


def test_both_response_conventions_give_the_same_susceptibility():
    C, R_field = _ou_exact(1.0, 0.5, 0.1, 40, kick=False)
    _, R_kick = _ou_exact(1.0, 0.5, 0.1, 40, kick=True)
    a, b = susceptibility(R_field), susceptibility(R_kick, kick=True)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.isnan(a.values[3, 4]) and a.values[4, 4] == 0.0  # t' > t undefined; chi(t, t) = 0


def test_effective_temperature_of_a_simulated_equilibrium_process():
    # Monte Carlo of the discrete OU process, C from the paths and R from a kick with common
    # noise, as sgd_multipass measures them; 4000 chains: relative error of T_eff ~ 2-3 %
    rng = np.random.default_rng(0)
    k, temperature, eta, n, chains = 1.0, 0.4, 0.02, 400, 4000
    a = 1 - k * eta
    noise = np.sqrt(2 * temperature * eta) * rng.standard_normal((n, chains))
    x = np.empty((n, chains))
    x[0] = np.sqrt(temperature / k) * rng.standard_normal(chains)  # start near stationarity
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    C = x @ x.T / chains
    R = np.tril(a ** np.clip(np.subtract.outer(np.arange(n), np.arange(n)), 0, None))  # linear: exact kick
    times = eta * np.arange(n)
    found = float(
        effective_temperature(_two_time(C, times), _two_time(R, times), at=7.0, max_lag=2.0, kick=True)
    )
    # known answer 2 T / (2 - k eta) = 0.404; 10 % covers ~4 standard errors of the C estimate
    assert found == pytest.approx(2 * temperature / (2 - k * eta), rel=0.1)
    hotter = float(
        effective_temperature(_two_time(2 * C, times), _two_time(R, times), at=7.0, max_lag=2.0, kick=True)
    )
    assert hotter == pytest.approx(2 * found, rel=1e-12)  # twice the fluctuations, same response


def test_susceptibility_refuses_an_uneven_grid():
    times = np.array([0.0, 0.1, 0.3])
    with pytest.raises(ValueError, match="evenly spaced"):
        susceptibility(_two_time(np.zeros((3, 3)), times))


def test_ridge_closed_form_on_a_store_grid():
    times = np.round(0.1 * np.arange(11), 12)
    ds = xr.Dataset(coords={"alpha": [1.5, 3.0], "time": times})
    ds.attrs["fixed_params"] = json.dumps({"ridge": 0.5, "m0": 0.2, "lr": 0.1})
    curves = ridge_closed_form(ds)
    direct = ridge_gd_curves(3.0, 0.5, 0.2, times, lr=0.1)
    np.testing.assert_allclose(curves.m.sel(alpha=3.0), direct["m"], rtol=1e-12)
    np.testing.assert_allclose(curves.test_error.isel(time=0), (1 - 2 * 0.2 + 1.04) / 2, rtol=1e-6)
    # the first GD step from w0 = m0 w* + z: m(lr) = m0 + lr (alpha (1 - m0) - ridge m0), as §9.1 gives
    first = 0.2 + 0.1 * (3.0 * (1 - 0.2) - 0.5 * 0.2)
    assert float(curves.m.sel(alpha=3.0).isel(time=1)) == pytest.approx(first, rel=1e-6)


def test_fraction_above():
    m = xr.DataArray([[0.95, 0.5, 0.99, 0.2]], dims=("case", "seed"))
    assert float(fraction_above(m, 0.9).squeeze()) == 0.5


@pytest.mark.parametrize("kick", [False, True])
@pytest.mark.parametrize("every", [2, 4])
def test_susceptibility_between_saved_steps_interpolates_to_the_step_sum(kick, every):
    # saved every 2 or 4 steps of 0.05 (h = 0.1, 0.2): chi is the step sum with R interpolated
    # linearly; the response a^lag is smooth on the scale 1/k = 1, so the error is O((k h)^2):
    # measured at most 3e-3 relative at h = 0.2; the coarse right Riemann sum would be ~k h / 2 = 10 % off
    k, temperature, eta = 1.0, 0.3, 0.05
    C, R = _ou_exact(k, temperature, eta, 241, kick)
    exact = susceptibility(R, kick=kick).isel(time=-1)
    coarse = {"time": slice(None, None, every), "time2": slice(None, None, every)}
    found = susceptibility(R.isel(coarse), kick=kick, step=eta).isel(time=-1)
    lags = slice(-60 // every, None)  # lags up to 3
    np.testing.assert_allclose(found[lags], exact.isel(time2=slice(None, None, every))[lags], rtol=5e-3)
    t_eff = effective_temperature(C.isel(coarse), R.isel(coarse), at=12.0, max_lag=3.0, kick=kick, step=eta)
    assert float(t_eff) == pytest.approx(2 * temperature / (2 - k * eta), rel=5e-3)
    with pytest.raises(ValueError, match="whole number of steps"):
        susceptibility(R.isel(coarse), kick=kick, step=0.03)


def test_connected_correlation_removes_the_noise_of_m():
    # C = C_theta + m(t) m(t') with a noisy m: with m given, the fit sees C_theta only
    k, temperature, eta = 1.0, 0.1, 0.05
    C, R = _ou_exact(k, temperature, eta, 200, kick=False)
    m = xr.DataArray(
        1 + 0.02 * np.random.default_rng(1).standard_normal(200), dims="time", coords={"time": C.time}
    )
    noisy = C + m * m.rename(time="time2")
    clean = float(effective_temperature(C, R, at=9.0, max_lag=3.0))
    assert float(effective_temperature(noisy, R, at=9.0, max_lag=3.0, m=m)) == pytest.approx(clean, rel=1e-10)
    assert (
        abs(float(effective_temperature(noisy, R, at=9.0, max_lag=3.0)) / clean - 1) > 0.2
    )  # the noise bites


def test_sign_test_error_mc_bound_is_the_linear_propagation():
    m, Q, dm, dQ = 0.6, 0.5, 1e-3, 2e-3
    ds = xr.Dataset({"m": m, "Q": Q, "m_mc_error": dm, "Q_mc_error": dQ})
    error = lambda m, Q: np.arccos(m / np.sqrt(Q)) / np.pi  # noqa: E731
    by_m = (error(m + 1e-7, Q) - error(m - 1e-7, Q)) / 2e-7 * dm
    by_Q = (error(m, Q + 1e-7) - error(m, Q - 1e-7)) / 2e-7 * dQ
    assert float(sign_test_error_mc_bound(ds)) == pytest.approx(np.hypot(by_m, by_Q), rel=1e-6)
