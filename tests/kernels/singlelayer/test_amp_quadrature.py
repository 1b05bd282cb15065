"""The Gaussian integrals of the `amp` kernel against a second quadrature (docs/amp.md §5).

References: scipy's QUADPACK (``quad``) on the same integrands, and on the *original* forms of
the integrals (before the changes of variable of docs/amp.md §4), and dense Gauss-Hermite
products where those converge. Tolerances: the kernel asks each integral for 1e-11
(``QUADRATURE_TOL``); QUADPACK is asked for 1e-13; comparisons allow 1e-9 relative where
both sides are that accurate, looser where the reference is the limit (stated per test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import log_ndtr, ndtr, roots_hermitenorm

from kernels.singlelayer.amp import abs_channel, channels, priors
from kernels.singlelayer.amp import integrands as q
from kernels.singlelayer.amp.quadrature import feature_breaks
from kernels.singlelayer.model import ABS, LINEAR, SIGN

TOL = 1e-11


def quad(f, lo, hi, points=None):
    value, _ = integrate.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-13, limit=500, points=points)
    return value


def phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def sech2(x):
    e = np.exp(-2 * abs(x))
    return 4 * e / (1 + e) ** 2


@pytest.mark.parametrize(
    "kind, args, lo, hi, centre, scale",
    [
        (q.SIGN_H, [0.7], 0.0, 12.0, 0.0, 1.0),
        (q.SIGN_PSI, [3.0], -36.0, 36.0, 0.0, 1.0),
        (q.SIGN_PSI, [1e-3], -0.012, 0.012, 0.0, 1e-3),
        (q.ABS_LABEL, [0.99, 0.01], 0.0, 12.0, 0.0, 0.1),
        (q.RADEMACHER_MSE, [40.0], -12.0, 12.0, -math.sqrt(40), 1 / math.sqrt(40)),
        (q.RADEMACHER_PSI, [2.0], -12.0, 12.0, -math.sqrt(2), 1.0),
    ],
)
def test_adaptive_leaf_meets_its_tolerance_against_quadpack(kind, args, lo, hi, centre, scale):
    breaks = feature_breaks(centre, scale, lo, hi)
    ours = q.adaptive_leaf(kind, np.array(args, dtype=float), breaks, 1e-12)
    ref = quad(lambda x: q.leaf(kind, x, np.array(args, dtype=float)), lo, hi, points=list(breaks[1:-1]))
    assert abs(ours - ref) <= 1e-12 + 1e-12 * abs(ref), (ours, ref)


@pytest.mark.parametrize("b", [1e-4, 0.05, 0.5, 0.99, 1.01, 2.7, 6.3, 9.9])
def test_tables_reproduce_the_integrals_they_tabulate(b):
    # piecewise Chebyshev at points that are not nodes: the series converged to round-off
    assert abs(abs_channel.sech2_mean(b) - abs_channel.direct["S"](b)) < 1e-14
    assert abs(abs_channel.tanh2_mean(b) / abs_channel.direct["T"](b) - 1) < 1e-12
    assert abs(abs_channel.log1p_mean(b) - abs_channel.direct["L"](b)) < 1e-14
    # and the definitions, by QUADPACK on the raw integrand
    raw = quad(lambda t: phi(t) * sech2(b * (b + t)), -12, 12, points=[-b])
    assert abs(abs_channel.sech2_mean(b) - raw) < 1e-12


def abs_fisher_original(m):
    """H = (1/V)[1 - E(y^2 sech^2(y omega / V)) / V], omega = sqrt(m) v, y = |omega + sqrt(V) xi|,
    as a 2-d QUADPACK integral over (v, xi) (docs/amp.md §4.2, before any change of variable)."""
    V = 1.0 - m

    def inner(v):
        om = math.sqrt(m) * v

        def f(xi):
            y = abs(om + math.sqrt(V) * xi)
            return phi(xi) * y * y * sech2(y * om / V)

        kink = -om / math.sqrt(V)
        return quad(f, -12, 12, points=[kink] if abs(kink) < 12 else None)

    e = quad(lambda v: phi(v) * inner(v), -12, 12, points=[0.0])
    return (1.0 - e / V) / V


@pytest.mark.parametrize("m", [0.05, 0.6, 0.9])
def test_phase_retrieval_fisher_against_the_original_double_integral(m):
    # 1e-8 relative: the nested QUADPACK reference's own accuracy at tol 1e-13 per level
    ours = channels.fisher(ABS, m, 1 - m, 0.0, 1.0, TOL)
    assert ours == pytest.approx(abs_fisher_original(m), rel=1e-8)


def test_phase_retrieval_psi_out_against_dense_gauss_hermite():
    # at m = 0.5 the kink of ln cosh has width V/|omega| ~ 0.7: a 400 x 400 Gauss-Hermite
    # product converges there to ~1e-7 (docs/amp.md §5 pitfall 1 is about large m)
    m, V = 0.5, 0.5
    t, w = roots_hermitenorm(400)
    w = w / w.sum()
    om = math.sqrt(m) * t[:, None]
    y = np.abs(om + math.sqrt(V) * t[None, :])
    x = y * om / V
    log_cosh = np.abs(x) + np.log1p(np.exp(-2 * np.abs(x))) - math.log(2)
    log_z = math.log(2 / math.sqrt(2 * math.pi * V)) - (y**2 + om**2) / (2 * V) + log_cosh
    ref = float(w @ log_z @ w)
    assert channels.psi_out(ABS, m, V, 0.0, 1.0, TOL) == pytest.approx(ref, abs=1e-7)


@pytest.mark.parametrize("m, noise", [(0.3, 0.0), (0.95, 0.0), (0.999, 0.0), (0.6, 0.2)])
def test_sign_channel_against_its_untransformed_forms(m, noise):
    # H = (1/W) E_v phi(a v)^2 / (Phi(a v) Phi(-a v)) and Psi_out = 2 E_v Phi(a v) ln Phi(a v),
    # a = sqrt(m / W), W = 1 - m + noise: the forms before the change of variable of docs/amp.md §4.1
    W = 1 - m + noise
    a = math.sqrt(m / W)
    cut = 12 / a if a > 1 else 12
    h = quad(lambda v: phi(v) * phi(a * v) ** 2 / (ndtr(a * v) * ndtr(-a * v)), -cut, cut, points=[0]) / W
    psi = 2 * quad(lambda v: phi(v) * ndtr(a * v) * log_ndtr(a * v), -12, 12, points=[0])
    assert channels.fisher(SIGN, m, 1 - m, noise, 1.0, TOL) == pytest.approx(h, rel=1e-9)
    assert channels.psi_out(SIGN, m, 1 - m, noise, 1.0, TOL) == pytest.approx(psi, rel=1e-9, abs=1e-12)


def test_known_values_and_limits():
    # sign: H(0) = 2/pi (docs/amp.md §4.1); Psi_out(0) = -ln 2 (a fair coin), -> 0 as m -> 1
    assert channels.fisher(SIGN, 0.0, 1.0, 0.0, 1.0, TOL) == pytest.approx(2 / math.pi, rel=1e-12)
    assert channels.psi_out(SIGN, 1e-12, 1 - 1e-12, 0.0, 1.0, TOL) == pytest.approx(-math.log(2), abs=1e-6)
    assert abs(channels.psi_out(SIGN, 1 - 1e-12, 1e-12, 0.0, 1.0, TOL)) < 1e-5
    # abs: H(m) = 2m + O(m^2) (docs/amp.md §4.2, weak recovery), to full relative precision at small m
    for m in (1e-8, 1e-5):
        assert channels.fisher(ABS, m, 1 - m, 0.0, 1.0, TOL) / m == pytest.approx(2.0, rel=10 * m)
    # abs: Psi_out is continuous at m = 0, where it is minus the entropy of y = |z|
    at_zero = channels.psi_out(ABS, 0.0, 1.0, 0.0, 1.0, TOL)
    assert channels.psi_out(ABS, 1e-9, 1 - 1e-9, 0.0, 1.0, TOL) == pytest.approx(at_zero, abs=1e-8)
    # linear: closed forms
    assert channels.fisher(LINEAR, 0.3, 0.7, 0.5, 1.0, TOL) == pytest.approx(1 / 1.2)
    # ±1 prior: mmse(mhat) against 1 - E tanh by QUADPACK, and its e^{-mhat/2} tail to relative accuracy
    for mh in (0.5, 5.0, 60.0):
        root = math.sqrt(mh)
        ref = quad(
            lambda x, mh=mh, root=root: phi(x) * 2 / (1 + np.exp(2 * (mh + root * x))),
            -12,
            12,
            points=[-root],
        )
        assert priors.mmse(priors.RADEMACHER, mh, TOL) == pytest.approx(ref, rel=1e-9)


def test_bayes_test_error_of_phase_retrieval_against_quadpack():
    # half of E|z|^2 - E_v (E_xi |sqrt(m) v + sqrt(V) xi|)^2, the inner mean by QUADPACK too
    m, V = 0.8, 0.2

    def label(v):
        om = math.sqrt(m) * v
        return quad(lambda xi: phi(xi) * abs(om + math.sqrt(V) * xi), -12, 12, points=[-om / math.sqrt(V)])

    ref = 0.5 * (1 - quad(lambda v: phi(v) * label(v) ** 2, -12, 12, points=[0]))
    assert channels.bayes_test_error(ABS, m, V, 0.0, 1.0, TOL) == pytest.approx(ref, rel=1e-9)
