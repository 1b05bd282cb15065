"""Phase transitions in ``alpha``, located by bisection (docs/amp.md §7).

:func:`bisect_alpha` finds where a monotone yes/no property of the SE switches on; the
predicates below are the properties whose switch-on points are the thresholds:

- :func:`weak_recovery`: one SE step from a tiny overlap increases it (``m = 0`` unstable);
- :func:`amp_recovers`: AMP's fixed point (uninformed start) is perfect recovery;
- :func:`bayes_recovers`: the Bayes-optimal fixed point is perfect recovery.

:func:`spinodal_from_curve` is an independent route to AMP's threshold of a first-order
transition: the maximum of the fixed-point curve ``alpha(mhat) = mhat / H(G(mhat))``,
no iteration involved.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize_scalar

from kernels.singlelayer.amp import channels, priors
from kernels.singlelayer.amp import state_evolution as se
from kernels.singlelayer.amp.priors import PRIOR_CODES, RHO
from kernels.singlelayer.model import TEACHER_CODES


def bisect_alpha(predicate: Callable[[float], bool], lo: float, hi: float, tol: float = 1e-4) -> float:
    """The ``alpha`` in ``[lo, hi]`` where ``predicate`` turns from False to True, within ``tol``.

    ``predicate`` must be False at ``lo`` and True at ``hi`` (and monotone between).
    """
    if predicate(lo) or not predicate(hi):
        raise ValueError(
            f"bisect_alpha: the predicate must be False at lo = {lo!r} and True at hi = {hi!r}; "
            f"got {predicate(lo)} and {predicate(hi)}. Widen the bracket."
        )
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if predicate(mid):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def _codes(teacher: str, prior: str) -> tuple[int, int]:
    return TEACHER_CODES[teacher], PRIOR_CODES[prior]


def weak_recovery(teacher: str, prior: str, alpha: float, noise: float = 0.0, m0: float = 1e-7) -> bool:
    """One SE step from ``m0`` (tiny) gives a larger overlap: ``m = 0`` is unstable."""
    channel, p = _codes(teacher, prior)
    _, V1 = se.step(channel, p, alpha, noise, RHO - m0, se.QUADRATURE_TOL)
    return RHO - V1 > m0


def _fixed(teacher: str, prior: str, alpha: float, noise: float, max_steps: int) -> se.FixedPoints:
    channel, p = _codes(teacher, prior)
    found = se.fixed_points(channel, p, alpha, noise, 1e-10, max_steps, se.QUADRATURE_TOL)
    if not all(found.converged):
        raise RuntimeError(f"SE did not converge in {max_steps} steps at alpha = {alpha!r}: raise max_steps")
    return found


def amp_recovers(teacher: str, prior: str, alpha: float, noise: float = 0.0, max_steps: int = 200000) -> bool:
    """AMP's fixed point (uninformed start) has zero MSE."""
    return _fixed(teacher, prior, alpha, noise, max_steps).mse_amp == 0.0


def bayes_recovers(
    teacher: str, prior: str, alpha: float, noise: float = 0.0, max_steps: int = 200000
) -> bool:
    """The Bayes-optimal fixed point (larger free entropy) has zero MSE."""
    return _fixed(teacher, prior, alpha, noise, max_steps).mse_bayes == 0.0


def spinodal_from_curve(teacher: str, prior: str, noise: float = 0.0, bracket=(0.1, 1.0, 30.0)) -> float:
    """``max over mhat of mhat / H(G(mhat))``: the largest ``alpha`` with an imperfect fixed point.

    ``bracket``: ``(a, b, c)`` in ``mhat`` with the curve at ``b`` above its values at ``a``, ``c``.
    """
    channel, p = _codes(teacher, prior)
    tol = se.QUADRATURE_TOL

    def minus_alpha(log_mhat: float) -> float:
        mhat = float(np.exp(log_mhat))
        V = priors.mmse(p, mhat, tol)
        return -mhat / channels.fisher(channel, RHO - V, V, noise, RHO, tol)

    result = minimize_scalar(minus_alpha, bracket=tuple(np.log(bracket)), tol=1e-10)
    return -float(result.fun)
