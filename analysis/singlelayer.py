"""Single-layer models on a fixed data set: the numbers behind the DMFT figures.

Theory (`dmft`) against finite-d simulation (`sgd_multipass`) goes through
:func:`sweeper.compare`; this module adds what that comparison does not know:

- :func:`ridge_closed_form`: the exact GD curves of ridge regression on a store's grid
  (docs/singlelayer.md §9.1);
- :func:`agreement` (with :func:`after_start`): per output, the worst deviation of a
  comparison (in sigma and relative) and the share of entries within 2 sigma;
- :func:`susceptibility`, :func:`fdt_curve`, :func:`effective_temperature`: the integrated
  response ``chi(t, t') = int_{t'}^{t} R(t, s) ds`` and the slope of ``chi`` against
  ``C(t, t) - C(t, t')`` at stationarity, ``1 / T_eff`` (docs/dmft.md §2.2);
- :func:`fraction_above`: the share of seeds whose final overlap clears a threshold.
- :func:`sign_test_error_mc_bound`: a conservative Monte-Carlo error of the DMFT's perceptron
  test error ``arccos(m / sqrt Q) / pi``, from the block errors of ``m`` and ``Q``.

Two response conventions (docs/singlelayer.md §11.3): `dmft`'s ``R(t, t')`` is the response
to a field acting in the step at ``t'`` (``R(t, t) = 0``), `sgd_multipass`'s is a kick of the
state at ``t'`` (``R(t, t) = 1``), one step ahead. With ``kick=False`` the integral is the
sum over the steps ``t' <= s < t``, with ``kick=True`` over ``t' < s <= t``: both are then the
same sum over the steps between ``t'`` and ``t``. Where the saved times are several steps
apart, ``R`` is interpolated between them (:func:`susceptibility`): a plain Riemann sum on a
grid of spacing ``h`` would be off by about ``h / (2 tau_R)`` for a response decaying over
``tau_R`` (10 % at ``h = 0.2``, ``tau_R = 1``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import xarray as xr

from kernels.singlelayer.closed_forms import ridge_gd_curves
from sweeper.comparison import worst

TIME, EARLIER = "time", "time2"  # the two-time outputs' dims: (t, t')


def fixed_params(ds: xr.Dataset) -> dict:
    """The parameters a store's grid holds fixed (not swept), as the grid file sets them."""
    return json.loads(ds.attrs.get("fixed_params", "{}"))


def ridge_closed_form(ds: xr.Dataset) -> xr.Dataset:
    """Exact ``m``, ``Q``, ``train_loss`` and ``test_error`` of ridge GD on ``ds``'s times.

    ``ds`` is a store of ridge regression (square loss, linear teacher, warm start) whose
    ``alpha`` is fixed or swept; ``ridge``, ``m0`` and ``lr`` are read from its fixed
    parameters. The curves are those of discrete GD at step ``lr`` (docs/singlelayer.md
    §9.1); ``test_error`` is ``(1 - 2 m + Q) / 2``. Dims: ``alpha`` (if swept), ``time``.
    """
    fixed = fixed_params(ds)
    alphas = np.atleast_1d(ds["alpha"].values if "alpha" in ds.coords else fixed["alpha"])
    times = ds[TIME].values
    curves = [ridge_gd_curves(float(a), fixed["ridge"], fixed["m0"], times, lr=fixed["lr"]) for a in alphas]
    out = xr.Dataset(
        {name: (("alpha", TIME), np.stack([c[name] for c in curves])) for name in ("m", "Q", "train_loss")},
        coords={"alpha": alphas, TIME: times},
    )
    out["test_error"] = (1 - 2 * out["m"] + out["Q"]) / 2
    return out if "alpha" in ds.coords else out.isel(alpha=0, drop=True)


def after_start(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without its first saved time, the start both kernels set (a warm start is exact).

    At ``t = 0`` the theory has no Monte-Carlo error and the simulation only the spread of its
    drawn start, so a deviation in sigma there measures nothing the dynamics did.
    """
    return ds.isel({TIME: slice(1, None)})


def agreement(comparison: xr.Dataset, outputs: Iterable[str]) -> dict[str, dict]:
    """Per output of a :func:`sweeper.compare` result: how well theory and simulation agree.

    Returns ``{output: {"worst_sigma", "worst_sigma_at", "worst_relative", "worst_relative_at",
    "within_2_sigma"}}``: the signed deviations of largest magnitude with their coordinates
    (NaN where there is no error estimate), and the share of compared entries whose
    deviation is at most 2 sigma (about 95 % for agreement with Gaussian errors).
    """
    found = {}
    for name in outputs:
        entry: dict = {}
        for kind in ("sigma", "relative"):
            w = worst(comparison[f"{name}_deviation_{kind}"])
            entry[f"worst_{kind}"], entry[f"worst_{kind}_at"] = (np.nan, {}) if w is None else w
        sigma = np.abs(comparison[f"{name}_deviation_sigma"].values)
        sigma = sigma[np.isfinite(sigma)]
        entry["within_2_sigma"] = float(np.mean(sigma <= 2)) if sigma.size else np.nan
        found[name] = entry
    return found


def susceptibility(R: xr.DataArray, kick: bool = False, step: float | None = None) -> xr.DataArray:
    """``chi(t, t') = int_{t'}^{t} R(t, s) ds`` on the saved grid, for every ``t' <= t``.

    ``R`` has dims ``time`` and ``time2`` on the same, evenly spaced times (any other dims
    are carried along). The integral is the discrete sum over the steps of the dynamics
    (``step``, default the saved spacing; the spacing must be a whole number of steps):
    ``kick=False``, `dmft`'s convention, ``step * sum R(t, s)`` over ``t' <= s < t``;
    ``kick=True``, `sgd_multipass`'s, over ``t' < s <= t`` (module doc). Where steps are not
    saved, ``R(t, s)`` is interpolated linearly in ``s`` between saved times, and in `dmft`'s
    convention towards ``R(t, t - step) = 1`` (a field in the last step moves ``w(t)`` by the
    step). With every step saved the sum is exact. ``chi(t, t) = 0``; ``t' > t`` is NaN.
    """
    times = R[TIME].values
    if not np.array_equal(times, R[EARLIER].values):
        raise ValueError("susceptibility: `time` and `time2` must hold the same saved times.")
    spacing = np.diff(times)
    if spacing.size and not np.allclose(spacing, spacing[0], rtol=1e-9):
        raise ValueError("susceptibility: the saved times must be evenly spaced (a linear time grid).")
    h = float(spacing[0]) if spacing.size else 1.0
    step = h if step is None else float(step)
    r = round(h / step)
    if r < 1 or abs(r * step - h) > 1e-9 * h:
        raise ValueError(f"susceptibility: the saved spacing {h!r} is not a whole number of steps {step!r}.")
    dims = [d for d in R.dims if d not in (TIME, EARLIER)] + [TIME, EARLIER]
    values = R.transpose(*dims).values  # (..., t, s)
    n = times.size
    left, right = values[..., :-1], values[..., 1:]  # interval k between saved s_k and s_(k+1)
    if kick:  # the steps s_k + m step, m = 1..r, interpolated
        intervals = step * ((r - 1) / 2 * left + (r + 1) / 2 * right)
    else:  # m = 0..r-1; in the last interval before t, towards R(t, t - step) = 1
        intervals = step * ((r + 1) / 2 * left + (r - 1) / 2 * right)
        last = np.arange(1, n)
        intervals[..., last, last - 1] = step * r * (values[..., last, last - 1] + 1) / 2
    t_index, k_index = np.arange(n)[:, None], np.arange(n - 1)[None, :]
    intervals = np.where(k_index < t_index, intervals, 0.0)
    tail = np.flip(np.cumsum(np.flip(intervals, -1), -1), -1)  # sum over intervals k >= j
    tail = np.concatenate([tail, np.zeros_like(values[..., :1])], -1)
    chi = np.where(np.arange(n)[None, :] <= t_index, tail, np.nan)
    out = xr.DataArray(chi, dims=dims, coords={name: c for name, c in R.coords.items()})
    return out.transpose(*R.dims).assign_attrs(long_name="chi(t, t') = integral of R(t, s) over t' <= s <= t")


def fdt_curve(
    C: xr.DataArray,
    R: xr.DataArray,
    at: float,
    max_lag: float,
    kick: bool = False,
    step: float | None = None,
    m: xr.DataArray | None = None,
) -> xr.Dataset:
    """The fluctuation-dissipation plot at ``t = at``: ``C(t, t) - C(t, t')`` and ``chi(t, t')``.

    Over the earlier times ``at - max_lag <= t' <= at`` (dim ``lag = t - t'``); ``kick`` and
    ``step`` as in :func:`susceptibility`. At equilibrium at temperature ``T``,
    ``chi = (C(t, t) - C(t, t')) / T`` (docs/dmft.md §2.2). With ``m`` (the overlap on
    ``time``), ``C`` is first made connected, ``C(t, t') - m(t) m(t')``: at stationarity
    ``m`` is constant, so the slope is the same, but the sampling noise of ``m(t')`` (a
    finite ``d``, or the effective process's finite number of trajectories) no longer
    enters ``dC``, where it is of the order of ``dC`` itself at low ``T_eff``.
    """
    chi = susceptibility(R, kick, step).sel({TIME: at}, method="nearest")
    if m is not None:
        C = C - m * m.rename({TIME: EARLIER})
    c = C.sel({TIME: at}, method="nearest")
    t = float(c[TIME])
    keep = (c[EARLIER] <= t + 1e-9) & (c[EARLIER] >= t - max_lag - 1e-9)
    c, chi = c.sel({EARLIER: keep}), chi.sel({EARLIER: keep})
    lag = t - c[EARLIER].values
    delta = c.sel({EARLIER: t}, method="nearest") - c
    out = xr.Dataset({"dC": delta, "chi": chi}).drop_vars(TIME, errors="ignore")
    return out.assign_coords(lag=(EARLIER, lag)).swap_dims({EARLIER: "lag"}).drop_vars(EARLIER)


def effective_temperature(
    C: xr.DataArray,
    R: xr.DataArray,
    at: float,
    max_lag: float,
    kick: bool = False,
    step: float | None = None,
    m: xr.DataArray | None = None,
) -> xr.DataArray:
    """``T_eff`` at ``t = at``: the inverse least-squares slope, through 0, of ``chi`` on ``dC``.

    The fit uses every saved ``t'`` within ``max_lag`` of ``at`` (:func:`fdt_curve`);
    ``1 / T_eff = sum(dC chi) / sum(dC^2)``. For Langevin dynamics at stationarity this is
    the temperature (up to the O(step) error of the discrete dynamics, docs/dmft.md §7.6).
    ``kick``, ``step``, ``m``: as in :func:`fdt_curve`.
    """
    curve = fdt_curve(C, R, at, max_lag, kick, step, m)
    slope = (curve["dC"] * curve["chi"]).sum("lag") / (curve["dC"] ** 2).sum("lag")
    return (1.0 / slope).assign_attrs(long_name="effective temperature T_eff")


def fraction_above(values: xr.DataArray, threshold: float, dim: str = "seed") -> xr.DataArray:
    """Share of ``dim`` (the seeds, by default) whose value exceeds ``threshold``."""
    return (values > threshold).mean(dim)


def sign_test_error_mc_bound(ds: xr.Dataset) -> xr.DataArray:
    """Monte-Carlo error of the `dmft` test error ``arccos(m / sqrt Q) / pi`` (teacher `sign`).

    The kernel declares the block errors of ``m`` and ``Q`` only (``m_mc_error``,
    ``Q_mc_error``, at the last time). They are propagated through ``rho = m / sqrt Q`` as if
    independent; since a block with larger weights has both larger, they are positively
    correlated and the true error of ``rho`` is smaller: a bound, not an estimate.
    """
    last = ds.isel(time=-1) if "time" in ds.dims else ds
    m, Q = last.m, last.Q
    d_rho = np.sqrt((last.m_mc_error / np.sqrt(Q)) ** 2 + (0.5 * m * last.Q_mc_error / Q**1.5) ** 2)
    rho = m / np.sqrt(Q)
    return d_rho / (np.pi * np.sqrt(1.0 - rho**2))
