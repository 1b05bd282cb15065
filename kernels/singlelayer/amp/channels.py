"""Output channels of the teacher-student GLM: SE integrals and GAMP's denoiser (docs/amp.md §4).

The channel is the project's ``teacher`` with label noise ``noise`` (``Delta``), as in
:func:`kernels.singlelayer.model.labels`:

- ``linear``: ``y = z + sqrt(Delta) xi``;
- ``sign``: ``y = sign(z + sqrt(Delta) xi)`` (the noise inside the sign: labels stay ±1);
- ``abs``: ``y = |z|`` (phase retrieval; noiseless only: the project adds noise after the
  absolute value, whose ``Z_out`` has no closed form; the parameter check refuses it).

State-evolution functions take the overlap ``m`` *and* ``V = rho - m`` (the MSE), so that
nothing is computed as a difference of two numbers near ``rho`` (docs/amp.md §5). Each
returns what docs/amp.md §2 defines:

- :func:`fisher` ``H(m) = E[g_out^2] = 2 dPsi_out/dm``;
- :func:`psi_out` ``Psi_out(m) = E ln Z_out``;
- :func:`bayes_test_error` the generalisation error of the Bayes predictor (docs/amp.md §2.4).

GAMP's denoiser :func:`denoise_output` returns ``g_out`` and ``-dg_out/domega`` per sample.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.singlelayer.amp import abs_channel
from kernels.singlelayer.amp import integrands as q
from kernels.singlelayer.model import ABS, LINEAR, SIGN

__all__ = ["ABS", "LINEAR", "SIGN", "bayes_test_error", "denoise_output", "fisher", "psi_out"]


@njit(cache=True)
def fisher(channel, m, V, noise, rho, tol):
    """``H(m) = E[g_out^2]`` at overlap ``m``, ``V = rho - m`` (docs/amp.md §4)."""
    if channel == LINEAR:
        return 1.0 / (V + noise)
    if channel == SIGN:
        # docs/amp.md §4.1: H = E_t[e^{-mu t^2/2} / (Phi Phi)] / (2 pi sqrt(W (rho + Delta)))
        W = V + noise
        mu = m / (rho + noise)
        integral = 2.0 * q.adaptive_leaf(
            q.SIGN_H, _one(mu), q.feature_breaks(0.0, 1.0, 0.0, q.GAUSS_CUT), tol
        )
        return integral / (2.0 * math.pi * math.sqrt(W * (rho + noise)))
    return abs_channel.fisher(m, V, rho, tol)


@njit(cache=True)
def psi_out(channel, m, V, noise, rho, tol):
    """``Psi_out(m) = E_{v,y} ln Z_out(y, sqrt(m) v, V)`` (docs/amp.md §2.2, §4)."""
    if channel == LINEAR:
        return -0.5 * math.log(2.0 * math.pi * (V + noise)) - 0.5
    if channel == SIGN:
        W = V + noise
        if m <= 0.0:
            return -math.log(2.0)
        if W <= 0.0:
            return 0.0
        a = math.sqrt(m / W)
        cut = min(q.LOG_CUT, q.GAUSS_CUT * a)
        breaks = q.feature_breaks(0.0, min(1.0, a), -cut, cut)
        return 2.0 * q.adaptive_leaf(q.SIGN_PSI, _one(a), breaks, tol)
    return abs_channel.psi_out(m, V, rho, tol)


@njit(cache=True)
def bayes_test_error(channel, m, V, noise, rho, tol):
    """Generalisation error of the Bayes predictor at overlap ``m`` (docs/amp.md §2.4).

    ``sign``: ``arccos(sqrt(m / rho)) / pi`` (0-1 error against the noiseless teacher);
    ``linear``, ``abs``: half the square error of the posterior-mean label, noise excluded,
    ``(E phi(z)^2 - E_v[E_z phi(sqrt(m) v + sqrt(V) z)]^2) / 2`` (``V / 2`` for ``linear``).
    """
    if channel == SIGN:
        return math.asin(math.sqrt(min(1.0, V / rho))) / math.pi
    if channel == LINEAR:
        return 0.5 * V
    if V <= 0.0:
        return 0.0
    scale = min(1.0, math.sqrt(V / m)) if m > 0.0 else 1.0
    breaks = q.feature_breaks(0.0, scale, 0.0, q.GAUSS_CUT)
    label2 = 2.0 * q.adaptive_leaf(q.ABS_LABEL, _two(m, V), breaks, tol)
    return 0.5 * (rho - label2)


@njit(cache=True)
def denoise_output(channel, y, omega, V, noise, g, minus_dg):
    """GAMP's output denoiser: ``g = g_out(y, omega, V)`` and ``-d g_out / d omega`` per sample, in place."""
    for mu in range(y.shape[0]):
        if channel == LINEAR:
            W = V + noise
            g[mu] = (y[mu] - omega[mu]) / W
            minus_dg[mu] = 1.0 / W
        elif channel == SIGN:
            W = V + noise
            sw = math.sqrt(W)
            u = y[mu] * omega[mu] / sw
            r = _mills_inverse(u)
            g[mu] = y[mu] * r / sw
            minus_dg[mu] = (u * r + r * r) / W
        else:
            x = y[mu] * omega[mu] / V
            g[mu] = (y[mu] * math.tanh(x) - omega[mu]) / V
            minus_dg[mu] = 1.0 / V - y[mu] * y[mu] / (V * V) * q.sech2(x)


@njit(cache=True)
def _mills_inverse(u):
    """``phi(u) / Phi(u)``; for ``u < -30`` the asymptotic series (relative error < 1e-9)."""
    if u < -30.0:
        u2 = 1.0 / (u * u)
        return -u / (1.0 - u2 + 3.0 * u2 * u2 - 15.0 * u2 * u2 * u2)
    return q.normal_pdf(u) / q.normal_cdf(u)


@njit(cache=True)
def _one(a):
    out = np.empty(1)
    out[0] = a
    return out


@njit(cache=True)
def _two(a, b):
    out = np.empty(2)
    out[0], out[1] = a, b
    return out
