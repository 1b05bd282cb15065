"""Adaptive Gauss-Kronrod quadrature (7-15 points) in numba: the parts every adaptive loop shares.

Every integral of the `amp` kernel is one-dimensional (docs/amp.md §5; phase retrieval's
double integrals become one-dimensional through tabulated functions,
:mod:`kernels.singlelayer.amp.abs_channel`). An adaptive loop integrates over the panels
given by breakpoints (:func:`feature_breaks`: the caller puts them at a kink and at geometric
steps away from a feature of known width, since a uniform start would step over a feature
narrower than the first panel's node spacing), evaluates the 15 Kronrod :func:`nodes` of a
panel, and halves every panel whose error estimate (:func:`panel`) exceeds its share of the
absolute tolerance ``tol``, so the estimated error of the sum is at most ``tol`` (or the
round-off floor). tests/kernels/singlelayer/test_amp_quadrature.py checks the stated accuracy
against scipy's QUADPACK.

numba cannot cache a function that takes another jitted function as an argument, so the
integrand is selected by an integer ``kind``, and the adaptive loop exists once per family of
integrands (:func:`kernels.singlelayer.amp.integrands.adaptive_leaf` for closed forms,
:func:`kernels.singlelayer.amp.abs_channel.adaptive_abs` for integrands that read the tables of
phase retrieval); the two copies differ only in the integrand they call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# QUADPACK's qk15 abscissae (positive half, x = 0 last) and weights.
_XK = np.array(
    [
        0.991455371120812639206854697526329,
        0.949107912342758524526189684047851,
        0.864864423359769072789712788640926,
        0.741531185599394439863864773280788,
        0.586087235467691130294144845693013,
        0.405845151377397166906606412076961,
        0.207784955007898467600689403773245,
        0.0,
    ]
)
_WK = np.array(
    [
        0.022935322010529224963732008058970,
        0.063092092629978553290700663189204,
        0.104790010322250183839876322541518,
        0.140653259715525918745189590510238,
        0.169004726639267902826583426598550,
        0.190350578064785409913256402421014,
        0.204432940075298892414161999234649,
        0.209482141084727828012999174891714,
    ]
)
# 7-point Gauss weights at _XK[1], _XK[3], _XK[5], _XK[7]
_WG = np.array(
    [
        0.129484966168869693270611432679082,
        0.279705391489276667901467771423780,
        0.381830050505118944950369775488975,
        0.417959183673469387755102040816327,
    ]
)

MAX_PANELS = 4000  # a panel budget per integral: beyond it the error estimate is returned as is


@njit(cache=True)
def panel(values, half):
    """Kronrod value, error estimate and roundoff floor of a panel from its 15 values.

    The error estimate is QUADPACK's (``qk15``): ``|K - G|`` scaled by ``(200 |K - G| /
    resasc)^1.5`` against the integrand's variation ``resasc``, which is realistic for
    smooth integrands where the bare ``|K - G|`` overstates the error by orders of magnitude.
    The floor ``50 eps * integral of |f|`` is what round-off allows: a panel whose estimate is
    below it is accepted whatever the tolerance (no futile bisection).
    """
    kron = _WK[7] * values[14]
    gauss = _WG[3] * values[14]
    resabs = _WK[7] * abs(values[14])
    for j in range(7):
        s = values[2 * j] + values[2 * j + 1]
        kron += _WK[j] * s
        resabs += _WK[j] * (abs(values[2 * j]) + abs(values[2 * j + 1]))
        if j % 2 == 1:
            gauss += _WG[j // 2] * s
    mean = 0.5 * kron
    resasc = _WK[7] * abs(values[14] - mean)
    for j in range(7):
        resasc += _WK[j] * (abs(values[2 * j] - mean) + abs(values[2 * j + 1] - mean))
    err = abs(kron - gauss) * half
    resasc *= half
    if resasc > 0.0 and err > 0.0:
        err = resasc * min(1.0, (200.0 * err / resasc) ** 1.5)
    return kron * half, err, 50.0 * 2.220446049250313e-16 * resabs * half


@njit(cache=True)
def nodes(lo, hi, out):
    """The 15 Kronrod nodes of [lo, hi] into ``out`` (pairs +-x, centre last); returns the half-width."""
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo)
    for j in range(7):
        out[2 * j] = centre - half * _XK[j]
        out[2 * j + 1] = centre + half * _XK[j]
    out[14] = centre
    return half


@njit(cache=True)
def feature_breaks(centre, scale, lo, hi):
    """Breakpoints of [lo, hi] at ``centre`` and ``centre +- scale 4^k``, sorted."""
    out = [lo, hi]
    if lo < centre < hi:
        out.append(centre)
    step = scale
    while step < hi - lo:
        if lo < centre - step < hi:
            out.append(centre - step)
        if lo < centre + step < hi:
            out.append(centre + step)
        step *= 4.0
    arr = np.array(out)
    arr.sort()
    return arr
