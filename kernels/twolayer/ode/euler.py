"""Explicit Euler with equal sub-steps between saved times (docs/ode.md §4.1).

What every public code for these equations does, and what the finite-d one-step expectation
is: one step of :func:`kernels.twolayer.ode.equations.derivative` times ``h``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kernels.twolayer.ode.equations import derivative, save, workspace

# The right-hand side inlined into the loop, as the `ode` 2 loop had it: a call passes its 21
# scratch arrays (reference counting on each). Not in the adaptive loop, where inlining doubled
# the compile time (13 -> 24 s under load) for a cost per step that the 6 stages hide.
_derivative = njit(inline="always")(derivative.py_func)


@njit(cache=True)
def integrate_euler(
    code, y, P, vs, a1, a2, av, wd, wv, noise, i4, z, times, n_sub, out_Q, out_M, out_v, out_risk, blowup
):
    """Explicit Euler of the overlap ODEs, landing exactly on every saved time.

    Parameters
    ----------
    code, a1, a2, av, wd, wv, noise, i4, z
        As :func:`kernels.twolayer.ode.equations.derivative`.
    y
        Initial state ``[Q, M, v]`` (:func:`kernels.twolayer.ode.equations.pack`),
        overwritten with the final state.
    P, vs
        Fixed teacher overlap ``(Mt, Mt)`` and second layer ``(Mt,)``.
    times, n_sub
        Sorted saved times (``times[0]`` is the initial state) and the number of equal Euler
        steps from ``times[j-1]`` to ``times[j]`` (:func:`kernels.timegrid.substeps`).
    out_Q, out_M, out_v, out_risk
        Records, one row per saved time.
    blowup
        Divergence threshold on ``|Q|``, ``|M|``, ``|v|``.

    Returns
    -------
    float
        ``-1.0`` on success, else the time at which the state became non-finite or exceeded
        ``blowup`` (the records hold what was saved before).
    """
    Mt = P.shape[0]
    K = out_Q.shape[1]
    n_q = K * K + K * Mt  # Q and M; v follows
    work = workspace(K, Mt, P, vs)
    dy = np.zeros(y.shape[0])
    move_v = av != 0.0 or wv != 0.0
    dt = 0.0
    for j in range(times.shape[0]):
        if j > 0 and n_sub[j] > 0:
            dt = (times[j] - times[j - 1]) / n_sub[j]
        for step in range(n_sub[j] if j > 0 else 0):
            _derivative(code, K, Mt, y, dy, a1, a2, av, wd, wv, noise, i4, z, work)
            # every increment above used the old state; now apply them
            bad = False
            for p in range(K):  # Q on p <= q, mirrored: it stays exactly symmetric
                for q in range(p, K):
                    new = y[p * K + q] + dt * dy[p * K + q]
                    y[p * K + q] = new
                    y[q * K + p] = new
                    if not abs(new) <= blowup:  # also catches NaN
                        bad = True
            for i in range(K * K, n_q):
                new = y[i] + dt * dy[i]
                y[i] = new
                if not abs(new) <= blowup:
                    bad = True
            if move_v:
                for i in range(n_q, y.shape[0]):
                    y[i] += dt * dy[i]
                    if not abs(y[i]) <= blowup:
                        bad = True
            if bad:
                return times[j - 1] + (step + 1) * dt
        save(code, K, Mt, y, P, vs, j, out_Q, out_M, out_v, out_risk)
    return -1.0
