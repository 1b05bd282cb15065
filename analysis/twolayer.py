"""The numbers the two-layer figures are about, from `ode`, `sgd_online` and `meanfield` stores.

Every function takes plain arrays or the DataArrays :func:`sweeper.open` returns (a ``time``
dim where a trajectory is meant, a ``seed`` dim where seeds are meant) and knows nothing of
plotting or of how the store was made. Definitions (what "plateau", "escape" and "deviation"
mean here) are in each docstring; the physics is that of docs/twolayer.md, docs/ode.md and
docs/meanfield.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

TIME = "time"
SEED = "seed"

# Region codes of the `ode` kernel's `region` output (docs/twolayer.md §2.3)
REGIONS = {1: "green", 2: "blue", 3: "orange", 4: "red"}
BLUE_LINE_TOLERANCE = 1e-9  # |kappa + delta| below this is the blue line, as kernels/twolayer/model.py


# --- Saad-Solla plateau (docs/twolayer.md §8.1) -------------------------------------------


def saad_solla_plateau_risk(K: int) -> float:
    """The plateau risk of the erf soft committee (``saad_solla``, K = M, lr -> 0).

    R = (K / pi) (pi / 6 - K arcsin(1 / (2K))), docs/twolayer.md §8.1: 0.011611 at K = 2.
    """
    return K / math.pi * (math.pi / 6 - K * math.asin(1 / (2 * K)))


def _log_slope(risk: np.ndarray, time: np.ndarray) -> np.ndarray:
    return np.gradient(np.log(risk), np.log(time))


def plateau(risk: np.ndarray, time: np.ndarray, drop: float = 0.5) -> tuple[float, float]:
    """Height and time of the plateau of one smooth risk trajectory: its flattest point in log-log.

    Looked for after the risk first fell below ``drop`` times its initial value (inside the first
    descent; at the earliest saved times a log grid is flat too): past the steepest point of that
    descent, the first local maximum of the log-log slope d log R / d log t, where the descent
    has slowed down most before the escape steepens it again. Meant for deterministic
    trajectories (an ODE, a seed mean over many seeds); a noisy one needs smoothing first.
    Returns ``(nan, nan)`` when the risk never falls below ``drop`` times its start. Saved
    times must be positive except a leading ``t = 0``.
    """
    risk, time = np.asarray(risk, float), np.asarray(time, float)
    if time[0] == 0:
        start, risk, time = risk[0], risk[1:], time[1:]
    else:
        start = risk[0]
    fell = np.nonzero(risk < drop * start)[0]
    if not len(fell):
        return math.nan, math.nan
    slope = _log_slope(np.maximum(risk, np.finfo(float).tiny), time)
    flat = fell[0]
    while flat + 1 < len(slope) and slope[flat + 1] <= slope[flat]:  # down the first descent
        flat += 1
    while flat + 1 < len(slope) and slope[flat + 1] > slope[flat]:  # up to where it is flattest
        flat += 1
    return float(risk[flat]), float(time[flat])


def crossing_time(risk: np.ndarray, time: np.ndarray, level: float, after: float = 0.0) -> float:
    """The first time after ``after`` at which the risk falls below ``level``.

    Interpolated linearly in (log t, log risk) between the two saved times that bracket the
    crossing (on a log time grid the risk is smooth in those variables); ``nan`` if it never
    does.
    """
    risk, time = np.asarray(risk, float), np.asarray(time, float)
    candidates = np.nonzero((time > after) & (risk < level))[0]
    if not len(candidates):
        return math.nan
    i = candidates[0]
    if i == 0 or time[i - 1] <= 0 or time[i - 1] <= after:
        return float(time[i])
    x0, x1 = math.log(time[i - 1]), math.log(time[i])
    y0, y1 = math.log(risk[i - 1]), math.log(max(risk[i], np.finfo(float).tiny))
    frac = (y0 - math.log(level)) / (y0 - y1)
    return float(math.exp(x0 + frac * (x1 - x0)))


def escape_time(risk: np.ndarray, time: np.ndarray, fraction: float = 0.5, drop: float = 0.5) -> float:
    """When the risk leaves the plateau: the first time after the plateau's flattest point at
    which it falls below ``fraction`` times the plateau height (:func:`plateau`), interpolated
    by :func:`crossing_time`. ``nan`` without a plateau or without an escape in the run."""
    height, t_flat = plateau(risk, time, drop)
    if math.isnan(height):
        return math.nan
    return crossing_time(risk, time, fraction * height, after=t_flat)


def plateaus(risk: xr.DataArray, fraction: float = 0.5, drop: float = 0.5) -> xr.Dataset:
    """:func:`plateau` and :func:`escape_time` of every trajectory of ``risk`` (all dims but
    ``time``): ``height``, ``t_plateau`` and ``t_escape``."""

    def one(r: np.ndarray, t: np.ndarray) -> np.ndarray:
        height, t_flat = plateau(r, t, drop)
        return np.array([height, t_flat, escape_time(r, t, fraction, drop)])

    out = xr.apply_ufunc(
        one,
        risk,
        risk[TIME],
        input_core_dims=[[TIME], [TIME]],
        output_core_dims=[["quantity"]],
        vectorize=True,
    )
    return xr.Dataset(
        {name: out.isel(quantity=i, drop=True) for i, name in enumerate(("height", "t_plateau", "t_escape"))}
    )


# --- Seeds, deviations and power laws ------------------------------------------------------


def mean_and_error(values: xr.DataArray, dim: str = SEED) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean over ``dim`` (NaN skipped) and its standard error ``std / sqrt(n)`` (``ddof = 1``)."""
    n = values.notnull().sum(dim)
    return values.mean(dim), values.std(dim, ddof=1) / np.sqrt(n)


def paired_deviation(
    theory: xr.DataArray,
    simulation: xr.DataArray,
    t_max: float | None = None,
    relative: bool = False,
    floor: float | None = None,
) -> xr.DataArray:
    """RMS over saved times of ``simulation - theory``, point by point (seed by seed).

    The two are paired: same coordinates, the theory started from the simulation's initial
    weights (same seed), so what remains is the simulation's fluctuation plus what the theory
    leaves out. ``t_max`` keeps the saved times up to it; ``relative`` divides the difference
    by the theory first; ``floor`` keeps only the times at which the theory is above it (a
    risk that has converged to round-off makes a relative difference meaningless). The result
    keeps every dim but ``time``.
    """
    diff = simulation - theory
    if relative:
        diff = diff / theory
    if floor is not None:
        diff = diff.where(theory > floor)
    if t_max is not None:
        diff = diff.sel({TIME: slice(None, t_max)})
    return np.sqrt((diff**2).mean(TIME))


@dataclass(frozen=True)
class PowerLaw:
    """``y = prefactor * x ** slope``, fitted in log-log; ``slope_error`` its standard error."""

    slope: float
    slope_error: float
    prefactor: float

    def __call__(self, x):
        return self.prefactor * np.asarray(x, float) ** self.slope

    def as_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "slope_error": self.slope_error, "prefactor": self.prefactor}


def fit_power_law(x, y, y_error=None) -> PowerLaw:
    """Weighted least squares of log y against log x.

    ``y_error`` (standard errors of y) weights each point by ``(y / y_error)^2``, the inverse
    variance of log y to first order; the slope's error is then the fit's formal error scaled
    by the square root of the reduced chi-square when that exceeds one (points scattering more
    than their errors say), so it is never smaller than the scatter allows. Without errors:
    ordinary least squares, error from the residuals.
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    n = len(lx)
    if n < 2:
        raise ValueError(f"fit_power_law: need at least 2 points, got {n}.")
    if y_error is None:
        w = np.ones(n)
    else:
        sigma = np.asarray(y_error, float) / np.asarray(y, float)
        w = 1 / sigma**2
    design = np.stack([np.ones(n), lx], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    intercept, slope = cov @ design.T @ (w * ly)
    residual = ly - intercept - slope * lx
    dof = max(n - 2, 1)
    chi2 = float(np.sum(w * residual**2)) / dof
    scale = chi2 if y_error is None else max(chi2, 1.0)
    return PowerLaw(float(slope), float(math.sqrt(cov[1, 1] * scale)), float(math.exp(intercept)))


def deviation_in_errors(
    theory: xr.DataArray, simulation: xr.DataArray, dim: str = SEED
) -> tuple[xr.DataArray, xr.DataArray]:
    """The seed mean of ``simulation - theory`` and that mean in units of its standard error.

    Paired seeds (same initial weights) make the difference's spread the simulation's own
    fluctuation, so ``|deviation| / error`` of a few means "agrees within its seed error".
    """
    mean, error = mean_and_error(simulation - theory, dim)
    return mean, mean / error


# --- The (kappa, delta) plane (docs/twolayer.md §2.3, §8.4) ---------------------------------


def expected_region(kappa, delta):
    """The region code of each (kappa, delta) by the conditions of docs/twolayer.md §2.3,
    written out here independently of the kernel: 1 green, 2 blue, 3 orange, 4 red."""
    kappa, delta = np.broadcast_arrays(np.asarray(kappa, float), np.asarray(delta, float))
    total = kappa + delta
    code = np.where(total > BLUE_LINE_TOLERANCE, 1, 0)
    code = np.where(np.abs(total) <= BLUE_LINE_TOLERANCE, 2, code)
    below = total < -BLUE_LINE_TOLERANCE
    code = np.where(below & (-delta < (kappa + 1) / 2), 3, code)
    code = np.where(below & (-delta >= (kappa + 1) / 2), 4, code)
    return code


def asymptotic_risk(risk: xr.DataArray, last: int = 5) -> xr.DataArray:
    """The long-time risk: the mean of the last ``last`` saved times (on a log grid a window of
    the last decade's fraction; an SGD trajectory fluctuates around its plateau, an ODE sits)."""
    return risk.isel({TIME: slice(-last, None)}).mean(TIME)
