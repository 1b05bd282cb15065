"""Closed-form learning curves used to validate the `dmft` kernel.

Ridge regression with square loss on a linear teacher is exactly solvable: the
dynamics of GD (discrete step ``eta``) or gradient flow decouple in the
eigenbasis of ``A = X^T X / d``, whose spectrum is Marchenko-Pastur. See
docs/singlelayer.md §9.1 (derived there, evaluated numerically).

Conventions (docs/singlelayer.md §1): the loss is a *sum* over the ``n = alpha d``
samples, ``L(w) = sum_mu (r_mu - y_mu)^2 / 2 + ridge |w|^2 / 2`` with
``r_mu = w . x_mu / sqrt(d)`` and ``y_mu = w* . x_mu / sqrt(d)``; the warm start
is ``w0 = m0 w* + z`` with ``z`` orthogonal to ``w*`` and ``|z|^2 = d``, so that
``Q(0) = m0^2 + 1``. ``train_loss`` is the per-sample mean of the loss.
"""

from __future__ import annotations

import numpy as np


def marchenko_pastur_quadrature(alpha: float, n_nodes: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for averages over the spectrum of ``X^T X / d``.

    Parameters
    ----------
    alpha
        Sample ratio ``n / d``.
    n_nodes
        Number of quadrature nodes on the continuous part.

    Returns
    -------
    nodes, weights
        ``sum(weights * f(nodes))`` approximates ``E_a f(a)``; for ``alpha < 1``
        the last node is the atom ``a = 0`` of mass ``1 - alpha``.

    Notes
    -----
    The continuous part has density ``sqrt((a+ - a)(a - a-)) / (2 pi a)`` on
    ``[a-, a+] = [(sqrt(alpha) - 1)^2, (sqrt(alpha) + 1)^2]`` (mass
    ``min(alpha, 1)``). With ``a = c + h cos(theta)`` the integrand becomes
    smooth in ``theta``, so the midpoint rule converges geometrically.
    """
    c, h = alpha + 1.0, 2.0 * np.sqrt(alpha)
    theta = (np.arange(n_nodes) + 0.5) * np.pi / n_nodes
    a = c + h * np.cos(theta)
    w = (h * np.sin(theta)) ** 2 / (2.0 * np.pi * a) * (np.pi / n_nodes)
    if alpha < 1.0:
        a = np.append(a, 0.0)
        w = np.append(w, 1.0 - alpha)
    return a, w


def ridge_gd_curves(
    alpha: float,
    ridge: float,
    m0: float,
    times: np.ndarray,
    lr: float | None = None,
    n_nodes: int = 4000,
) -> dict[str, np.ndarray]:
    """Exact ``m``, ``Q`` and ``train_loss`` of ridge regression under GD or gradient flow.

    Parameters
    ----------
    alpha, ridge, m0
        Sample ratio, ridge ``lambda`` and warm-start overlap (``Q(0) = m0^2 + 1``).
    times
        Times at which to evaluate. For discrete GD they must be multiples of
        ``lr`` (the step count is ``round(t / lr)``).
    lr
        GD step ``eta``; ``None`` gives gradient flow.

    Returns
    -------
    dict with ``m``, ``Q``, ``train_loss`` (arrays like ``times``).

    Notes
    -----
    docs/singlelayer.md §9.1: with ``p(a) = (1 - eta (lambda + a))^k`` (or ``exp(-(lambda + a) t)``),
    ``m = E[a/(l+a) + p (m0 - a/(l+a))]``,
    ``L = E[a (p (m0 - a/(l+a)) - l/(l+a))^2 + a p^2] / (2 alpha)``,
    ``Q = E[(p (m0 - a/(l+a)) + a/(l+a))^2 + p^2]``.
    """
    a, w = marchenko_pastur_quadrature(alpha, n_nodes)
    times = np.asarray(times, dtype=float)
    if lr is None:
        p = np.exp(-np.outer(times, ridge + a))
    else:
        steps = np.rint(times / lr)
        p = (1.0 - lr * (ridge + a))[None, :] ** steps[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        fixed = np.where(a > 0, a / (ridge + a), 0.0)  # the a = 0 atom never moves
    shrink = ridge / (ridge + a) if ridge > 0 else np.where(a > 0, 0.0, 1.0)
    dev = p * (m0 - fixed)
    m = (fixed + dev) @ w
    loss = (a * (dev - shrink) ** 2 + a * p**2) @ w / (2.0 * alpha)
    q = ((dev + fixed) ** 2 + p**2) @ w
    return {"m": m, "Q": q, "train_loss": loss}


def ridge_langevin_stationary_q(alpha: float, ridge: float, temperature: float, n_nodes: int = 4000) -> float:
    """Stationary ``Q`` of Langevin gradient flow on the ridge problem at temperature ``T``.

    The Gibbs measure ``exp(-L(w) / T)`` of the quadratic loss is Gaussian with
    mean ``(lambda + A)^-1 A w*`` and covariance ``T (lambda + A)^-1``, so
    ``Q = E[(a / (lambda + a))^2] + T E[(lambda + a)^-1]``.
    """
    a, w = marchenko_pastur_quadrature(alpha, n_nodes)
    return float(np.sum(w * (a / (ridge + a)) ** 2) + temperature * np.sum(w / (ridge + a)))
