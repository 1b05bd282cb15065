"""State evolution of Bayes-optimal GAMP and the replica-symmetric free entropy (docs/amp.md §2).

The state is the MSE ``V = rho - m`` (not ``m``: near perfect recovery ``V`` is what must keep
its relative precision). One step (docs/amp.md §2.3)::

    mhat^t = alpha H(m^t),        V^{t+1} = mmse(mhat^t)   (m^{t+1} = G(mhat^t)).

``V`` below :data:`MSE_FLOOR` is perfect recovery and is set to 0 (the channel functions
diverge there). The free entropy along the path is ``f_RS(m^t) = inf_mhat f_RS(m^t, mhat)``,
whose infimum is at the ``mhat`` with ``mmse(mhat) = V^t`` (``Psi_w`` is convex): that is
``mhat^{t-1}`` itself, so only the start needs :func:`kernels.singlelayer.amp.priors.conjugate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from kernels.singlelayer.amp import channels, priors
from kernels.singlelayer.amp.priors import RHO
from kernels.singlelayer.model import ABS, LINEAR

MSE_FLOOR = 1e-14  # V below this (relative to rho) is perfect recovery, V = 0
QUADRATURE_TOL = 1e-11  # absolute accuracy asked of each Gaussian integral (relative for H and mmse)


@njit(cache=True)
def step(channel, prior, alpha, noise, V, tol):
    """``(mhat, V')`` of one SE step from MSE ``V``; ``V = 0`` stays perfect recovery."""
    if V <= 0.0:
        return math.inf, 0.0
    mhat = alpha * channels.fisher(channel, RHO - V, V, noise, RHO, tol)
    V_next = priors.mmse(prior, mhat, tol)
    if V_next < MSE_FLOOR * RHO:
        V_next = 0.0
    return mhat, V_next


@njit(cache=True)
def path(channel, prior, alpha, noise, V0, n_steps, tol):
    """MSE ``V^0..V^n_steps`` from ``V0`` and the ``mhat^0..mhat^{n_steps-1}`` between them."""
    V = np.empty(n_steps + 1)
    mhat = np.empty(n_steps)
    V[0] = V0
    for t in range(n_steps):
        mhat[t], V[t + 1] = step(channel, prior, alpha, noise, V[t], tol)
    return V, mhat


@njit(cache=True)
def fixed_point(channel, prior, alpha, noise, V0, tolerance, max_steps, tol):
    """Iterate SE from ``V0`` until ``|V' - V| <= tolerance V'`` or ``V' = 0``.

    Returns ``(V, mhat, steps, converged)``: the fixed point's MSE, its ``mhat``, the number of
    steps taken and whether the criterion was met within ``max_steps``. The criterion is
    relative so that a slow approach to perfect recovery (``V -> 0`` geometrically) is not
    taken for a fixed point; near a spinodal the approach is slow too (docs/amp.md §5, pitfall 3).
    """
    V = V0
    mhat = 0.0
    for t in range(max_steps):
        mhat, V_next = step(channel, prior, alpha, noise, V, tol)
        if V_next == 0.0 or abs(V_next - V) <= tolerance * V_next:
            return V_next, mhat, t + 1, True
        V = V_next
    return V, mhat, max_steps, False


def free_entropy(
    channel: int, prior: int, alpha: float, noise: float, V: float, mhat: float, tol: float
) -> float:
    """``f_RS(m, mhat) = Psi_w(mhat) - m mhat / 2 + alpha Psi_out(m)`` at ``m = rho - V``.

    At ``V = 0`` (perfect recovery) its limit: ``-ln 2 + alpha Psi_out(rho)`` for the ±1 prior
    with the sign channel or noisy linear channel; ``+inf`` where ``y`` has a density that
    concentrates (noiseless ``linear`` or ``abs``) and the prior is ±1 or ``alpha > 1``;
    ``-inf`` otherwise (docs/amp.md §2.5).
    """
    m = RHO - V
    if V > 0.0:
        prior_part = priors.psi_w(prior, mhat, tol) - 0.5 * m * mhat
        return prior_part + alpha * channels.psi_out(channel, m, V, noise, RHO, tol)
    concentrating = channel == ABS or (channel == LINEAR and noise == 0.0)
    if concentrating:
        if prior == priors.RADEMACHER or alpha > 1.0:
            return math.inf
        return -math.inf if alpha < 1.0 else math.nan
    if prior == priors.GAUSSIAN:
        return -math.inf
    return -math.log(2.0) + alpha * channels.psi_out(channel, RHO, 0.0, noise, RHO, tol)


UNINFORMED_M0 = 1e-6  # times rho: m = 0 is a fixed point of even channels (docs/amp.md §5, pitfall 4)
INFORMED_MSE0 = 1e-8  # times rho


@dataclass(frozen=True)
class FixedPoints:
    """The fixed points reached from the uninformed and the informed start (docs/amp.md §2.3).

    ``mse``, ``mhat``, ``free_entropy``, ``steps``, ``converged`` (whether the criterion of
    :func:`fixed_point` was met): pairs ``(uninformed, informed)``.
    The uninformed one is AMP's; the Bayes-optimal one is that of larger free entropy
    (ties, e.g. the same point reached from both starts: the larger ``m``).
    """

    mse: tuple[float, float]
    mhat: tuple[float, float]
    free_entropy: tuple[float, float]
    steps: tuple[int, int]
    converged: tuple[bool, bool]

    @property
    def bayes(self) -> int:
        """Index (0: uninformed, 1: informed) of the Bayes-optimal fixed point."""
        (f0, f1), (v0, v1) = self.free_entropy, self.mse
        return 1 if (f1 > f0 or (f1 == f0 and v1 < v0)) else 0

    @property
    def mse_amp(self) -> float:
        return self.mse[0]

    @property
    def mse_bayes(self) -> float:
        return self.mse[self.bayes]


def fixed_points(
    channel: int, prior: int, alpha: float, noise: float, tolerance: float, max_steps: int, tol: float
) -> FixedPoints:
    """SE to its fixed points from ``m = UNINFORMED_M0 rho`` and from ``m = rho - INFORMED_MSE0 rho``."""
    found = []
    for V0 in ((1.0 - UNINFORMED_M0) * RHO, INFORMED_MSE0 * RHO):
        V, mhat, steps, converged = fixed_point(channel, prior, alpha, noise, V0, tolerance, max_steps, tol)
        found.append((V, mhat, free_entropy(channel, prior, alpha, noise, V, mhat, tol), steps, converged))
    (V0_, h0, f0, s0, c0), (V1_, h1, f1, s1, c1) = found
    return FixedPoints((V0_, V1_), (h0, h1), (f0, f1), (s0, s1), (c0, c1))


def free_entropy_path(
    channel: int, prior: int, alpha: float, noise: float, V: np.ndarray, mhat: np.ndarray, tol: float
) -> np.ndarray:
    """``f_RS(m^t)`` along a path from :func:`path` (the start's ``mhat`` by :func:`priors.conjugate`)."""
    conjugates = np.concatenate([[priors.conjugate(prior, V[0], tol)], mhat])
    return np.array([free_entropy(channel, prior, alpha, noise, v, h, tol) for v, h in zip(V, conjugates)])
