"""Pointwise losses of single-layer models, shared by the `sgd` and `dmft` kernels.

Every loss is a function ``l(y, r)`` of a label ``y`` and a preactivation (score)
``r``; the training loss is the *sum* over samples (docs/singlelayer.md §1). The numba
function :func:`loss_derivatives` returns ``(l, dl/dr, d2l/dr2)`` for a loss
selected by an integer code, so it can be called from inside other ``@njit``
functions (the finite-N simulator and the DMFT effective process use the very
same code path).

=========  ====  ==============================  =================================
name       code  ``l(y, r)``                     notes
=========  ====  ==============================  =================================
square     0     ``(r - y)^2 / 2``
logistic   1     ``log(1 + exp(-y r))``          labels ``y = +-1``
hinge      2     ``max(0, 1 - y r)``             ``l''`` = 0 (a.e.); labels ``+-1``;
                                                 refused by `dmft` (the kink's
                                                 delta in ``l''`` is lost)
logcosh    3     ``log cosh(r - y)``             docs/singlelayer.md §10.1 check case
phase      4     ``scale (y^2 - r^2)^2``         phase retrieval (docs/singlelayer.md §2);
                                                 ``scale`` = ``loss_scale``
=========  ====  ==============================  =================================

``scale`` multiplies only the phase loss (its prefactor is 1 in the Dmitriev
thesis and 1/4 in MUZ 2021 as recalled; it only rescales time). The other losses
ignore it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SQUARE, LOGISTIC, HINGE, LOGCOSH, PHASE = 0, 1, 2, 3, 4

LOSS_CODES: dict[str, int] = {
    "square": SQUARE,
    "logistic": LOGISTIC,
    "hinge": HINGE,
    "logcosh": LOGCOSH,
    "phase": PHASE,
}

_LOG2 = math.log(2.0)


@njit(cache=True)
def loss_derivatives(code: int, y: float, r: float, scale: float) -> tuple[float, float, float]:
    """Loss, first and second derivative in ``r`` of loss ``code`` at ``(y, r)``.

    Parameters
    ----------
    code
        One of :data:`LOSS_CODES`' values.
    y, r
        Label and preactivation.
    scale
        Prefactor of the phase loss; ignored by the other losses.

    Returns
    -------
    l, dl, d2l
        ``l(y, r)``, ``dl/dr`` and ``d2l/dr2``. An unknown code returns NaNs, so
        the caller's finiteness check reports it instead of a silent zero.
    """
    if code == SQUARE:
        z = r - y
        return 0.5 * z * z, z, 1.0
    if code == LOGISTIC:
        z = y * r
        # log(1 + e^{-z}) evaluated without overflow on either side
        if z > 0:
            e = math.exp(-z)
            ell = math.log1p(e)
            sig_minus = e / (1.0 + e)  # sigma(-z)
        else:
            e = math.exp(z)
            ell = -z + math.log1p(e)
            sig_minus = 1.0 / (1.0 + e)
        return ell, -y * sig_minus, y * y * sig_minus * (1.0 - sig_minus)
    if code == HINGE:
        z = y * r
        if z < 1.0:
            return 1.0 - z, -y, 0.0
        return 0.0, 0.0, 0.0
    if code == LOGCOSH:
        z = r - y
        az = abs(z)
        t = math.tanh(z)
        # log cosh z = |z| + log(1 + e^{-2|z|}) - log 2, stable for large |z|
        return az + math.log1p(math.exp(-2.0 * az)) - _LOG2, t, 1.0 - t * t
    if code == PHASE:
        y2, r2 = y * y, r * r
        diff = y2 - r2
        return scale * diff * diff, -4.0 * scale * r * diff, scale * (12.0 * r2 - 4.0 * y2)
    return math.nan, math.nan, math.nan


def loss_code(name: str) -> int:
    """Integer code of a loss name; the error lists the known names."""
    try:
        return LOSS_CODES[name]
    except KeyError:
        known = ", ".join(repr(k) for k in LOSS_CODES)
        raise ValueError(f"Unknown loss {name!r}. Known losses: {known}.") from None


def evaluate(name: str, y: np.ndarray, r: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Vectorised ``(l, dl/dr, d2l/dr2)`` for arrays (tests and notebooks)."""
    code = loss_code(name)
    y, r = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.asarray(r, dtype=np.float64))
    out = np.empty((3, *y.shape))
    flat = out.reshape(3, -1)
    _evaluate_many(code, y.ravel(), r.ravel(), float(scale), flat)
    return out[0], out[1], out[2]


@njit(cache=True)
def _evaluate_many(code, y, r, scale, out):
    for i in range(y.shape[0]):
        out[0, i], out[1, i], out[2, i] = loss_derivatives(code, y[i], r[i], scale)


__all__ = [
    "HINGE",
    "LOGCOSH",
    "LOGISTIC",
    "LOSS_CODES",
    "PHASE",
    "SQUARE",
    "evaluate",
    "loss_code",
    "loss_derivatives",
]
