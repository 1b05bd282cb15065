"""Error-controlled integration: Dormand-Prince 5(4) with a PI step-size controller.

The dynamics of the overlaps are slow almost everywhere (plateaus, the approach to a fixed
point) and fast only at the escapes: an embedded pair takes large steps on the former and
small ones only where the local error asks for them (docs/ode.md §4.2). The method is a
declaration (the Butcher tableau below); :func:`integrate_adaptive` is the generic explicit
Runge-Kutta loop with first-same-as-last stages, Hairer's error norm and PI controller
(Hairer, Norsett & Wanner, *Solving ODEs I*, §II.4 and the code DOPRI5), and exact stops at
the saved times. It calls the same right-hand side as Euler
(:func:`kernels.twolayer.ode.equations.derivative`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.twolayer.ode.equations import derivative, diverged, save, workspace

# Dormand & Prince, J. Comput. Appl. Math. 6, 19 (1980): row s of A gives stage s from the
# stages before it; the last row is the 5th-order solution (first same as last: its stage
# is the derivative at the new state). E = b5 - b4 estimates the local error.
DP5_A = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0],
        [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0],
        [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
    ]
)
DP5_E = np.array([-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
ERROR_ORDER = 4  # the local error estimate is O(h^5)

# Hairer's DOPRI5 controller: h_new = h err^-0.17 err_prev^0.04 / 0.9, between h/5 and 10 h.
SAFETY, BETA, MIN_FACTOR, MAX_FACTOR = 0.9, 0.04, 0.2, 10.0
ALPHA = 1.0 / (ERROR_ORDER + 1) - 0.75 * BETA

# Failure codes of integrate_adaptive (0: success)
DIVERGED, TOO_MANY_STEPS, STEP_UNDERFLOW = 1, 2, 3


@njit(cache=True)
def _error_norm(y, y_new, err, rtol, atol):
    """Root-mean-square of ``err / (atol + rtol max(|y|, |y_new|))`` (Hairer's norm)."""
    acc = 0.0
    for i in range(y.shape[0]):
        scale = atol + rtol * max(abs(y[i]), abs(y_new[i]))
        e = err[i] / scale
        acc += e * e
    return math.sqrt(acc / y.shape[0])


@njit(cache=True)
def _rms_scaled(y, f, rtol, atol):
    acc = 0.0
    for i in range(y.shape[0]):
        e = f[i] / (atol + rtol * abs(y[i]))
        acc += e * e
    return math.sqrt(acc / y.shape[0])


@njit(cache=True)
def _trial_step(y, f0, span, rtol, atol):
    """First guess ``h0`` of Hairer's starting-step rule (Solving ODEs I, §II.4)."""
    d0, d1 = _rms_scaled(y, y, rtol, atol), _rms_scaled(y, f0, rtol, atol)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    return min(h0, span)


@njit(cache=True)
def _initial_step(y, f0, f1, h0, span, rtol, atol):
    """Hairer's starting step from ``f0 = f(y)`` and ``f1 = f(y + h0 f0)`` (scipy's rule)."""
    d1 = _rms_scaled(y, f0, rtol, atol)
    acc = 0.0
    for i in range(y.shape[0]):
        e = (f1[i] - f0[i]) / (atol + rtol * abs(y[i]))
        acc += e * e
    d2 = math.sqrt(acc / y.shape[0]) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (ERROR_ORDER + 1))
    return min(100.0 * h0, h1, span)


@njit(cache=True)
def integrate_adaptive(
    code, y, P, vs, a1, a2, av, wd, wv, noise, i4, z, times, rtol, atol, max_steps,
    out_Q, out_M, out_v, out_risk, blowup, counts,
):  # fmt: skip
    """Dormand-Prince 5(4) of the overlap ODEs, stopping exactly at every saved time.

    Parameters
    ----------
    code, a1, a2, av, wd, wv, noise, i4, z
        As :func:`kernels.twolayer.ode.equations.derivative`.
    y
        Initial state ``[Q, M, v]``, overwritten with the final state.
    P, vs
        Fixed teacher overlap and second layer.
    times
        Sorted saved times, ``times[0] = 0`` the initial state. A step that would cross a
        saved time is cut to end on it (and one that would end within 1% of it is stretched
        to it), so every record is the integrated state at its time, not an interpolation.
    rtol, atol
        Local error tolerances: a step is accepted when the RMS over the state of
        ``err / (atol + rtol |y|)`` is at most 1.
    max_steps
        Accepted plus rejected steps one point may take.
    out_Q, out_M, out_v, out_risk
        Records, one row per saved time.
    blowup
        Divergence threshold on ``|Q|``, ``|M|``, ``|v|``.
    counts
        ``int64 (2,)``: accepted and rejected steps, written.

    Returns
    -------
    (float, int)
        ``(-1.0, 0)`` on success, else the time reached and the failure code:
        :data:`DIVERGED` (state non-finite or beyond ``blowup`` after an accepted step),
        :data:`TOO_MANY_STEPS` or :data:`STEP_UNDERFLOW` (the controller asked for a step
        below the round-off of ``t``: a singular or diverging right-hand side).
    """
    Mt = P.shape[0]
    K = out_Q.shape[1]
    n = y.shape[0]
    work = workspace(K, Mt, P, vs)
    n_stages = DP5_A.shape[0]
    k = np.empty((n_stages, n))
    y_stage = np.empty(n)
    err = np.empty(n)

    def evaluate(state, out):
        derivative(code, K, Mt, state, out, a1, a2, av, wd, wv, noise, i4, z, work)

    evaluate(y, k[0])
    save(code, K, Mt, y, P, vs, 0, out_Q, out_M, out_v, out_risk)
    t = times[0]
    span = times[-1] - t
    h0 = _trial_step(y, k[0], span, rtol, atol)
    for i in range(n):
        y_stage[i] = y[i] + h0 * k[0, i]
    evaluate(y_stage, k[1])
    h = _initial_step(y, k[0], k[1], h0, span, rtol, atol)
    err_prev = 1e-4
    accepted = 0
    rejected = 0
    just_rejected = False
    for j in range(1, times.shape[0]):
        t_end = times[j]
        while t < t_end:
            if accepted + rejected >= max_steps:
                counts[0], counts[1] = accepted, rejected
                return t, TOO_MANY_STEPS
            last = t + 1.01 * h >= t_end
            step = t_end - t if last else h
            for s in range(1, n_stages):
                for i in range(n):
                    acc = 0.0
                    for m in range(s):
                        acc += DP5_A[s, m] * k[m, i]
                    y_stage[i] = y[i] + step * acc
                evaluate(y_stage, k[s])
            # the last stage was evaluated at the 5th-order solution: y_stage is y_new
            for i in range(n):
                acc = 0.0
                for m in range(n_stages):
                    acc += DP5_E[m] * k[m, i]
                err[i] = step * acc
            e = _error_norm(y, y_stage, err, rtol, atol)
            if e <= 1.0:
                accepted += 1
                t = t_end if last else t + step
                y[:] = y_stage
                k[0] = k[n_stages - 1]
                if diverged(y, blowup):
                    counts[0], counts[1] = accepted, rejected
                    return t, DIVERGED
                factor = min(MAX_FACTOR, max(MIN_FACTOR, SAFETY * e**-ALPHA * err_prev**BETA))
                if just_rejected:
                    factor = min(factor, 1.0)
                err_prev = max(e, 1e-4)
                just_rejected = False
                proposed = step * factor
                # a step cut to land on a saved time says little about the step to come
                h = max(proposed, h) if (last and step < h and factor >= 1.0) else proposed
            else:
                rejected += 1
                just_rejected = True
                if e == e:  # finite error: shrink by the controller, at most 5x
                    h = step * max(MIN_FACTOR, SAFETY * e**-ALPHA)
                else:  # a stage left the domain (NaN): back off hard
                    h = step * MIN_FACTOR
            if h <= 1e-14 * max(abs(t), 1.0):
                counts[0], counts[1] = accepted, rejected
                return t, STEP_UNDERFLOW
        save(code, K, Mt, y, P, vs, j, out_Q, out_M, out_v, out_risk)
    counts[0], counts[1] = accepted, rejected
    return -1.0, 0


def dormand_prince(f, y, times, rtol, atol, max_steps, save):
    """The same method and controller as :func:`integrate_adaptive`, driven from Python.

    For right-hand sides that are already compiled and costly per call (the `meanfield`
    velocities, O(K^2) a call), where the Python around them is negligible.

    Parameters
    ----------
    f
        ``f(y) -> dy/dt`` (a new array).
    y
        Initial state (1-D), overwritten with the final state.
    times
        Saved times, ``times[0]`` the initial state; exact stops as in :func:`integrate_adaptive`.
    rtol, atol, max_steps
        As :func:`integrate_adaptive`.
    save
        ``save(j, y)`` records saved time ``j``.

    Returns
    -------
    (float, int, int, int)
        ``(time, code, accepted, rejected)``: ``time = -1`` and ``code = 0`` on success, else
        the time reached and :data:`TOO_MANY_STEPS` or :data:`STEP_UNDERFLOW` (non-finite
        states are rejected steps; one that stays so ends in an underflow).
    """
    n_stages = DP5_A.shape[0]
    k = [f(y)]
    save(0, y)
    t = times[0]
    span = times[-1] - t
    h0 = _trial_step(y, k[0], span, rtol, atol)
    h = _initial_step(y, k[0], f(y + h0 * k[0]), h0, span, rtol, atol)
    err_prev, accepted, rejected, just_rejected = 1e-4, 0, 0, False
    for j in range(1, len(times)):
        t_end = times[j]
        while t < t_end:
            if accepted + rejected >= max_steps:
                return t, TOO_MANY_STEPS, accepted, rejected
            last = t + 1.01 * h >= t_end
            step = t_end - t if last else h
            k = k[:1]
            for s in range(1, n_stages):
                y_stage = y + step * sum(DP5_A[s, m] * k[m] for m in range(s) if DP5_A[s, m] != 0.0)
                k.append(f(y_stage))
            err = step * sum(DP5_E[m] * k[m] for m in range(n_stages) if DP5_E[m] != 0.0)
            scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_stage))
            with np.errstate(invalid="ignore", over="ignore"):
                e = float(np.sqrt(np.mean((err / scale) ** 2)))
            if e <= 1.0:
                accepted += 1
                t = t_end if last else t + step
                y[:] = y_stage
                k = [k[-1]]
                growth = max(e, 1e-16) ** -ALPHA  # an exact step (e = 0) grows by MAX_FACTOR
                factor = min(MAX_FACTOR, max(MIN_FACTOR, SAFETY * growth * err_prev**BETA))
                if just_rejected:
                    factor = min(factor, 1.0)
                err_prev, just_rejected = max(e, 1e-4), False
                proposed = step * factor
                h = max(proposed, h) if (last and step < h and factor >= 1.0) else proposed
            else:
                rejected += 1
                just_rejected = True
                h = step * (max(MIN_FACTOR, SAFETY * e**-ALPHA) if e == e else MIN_FACTOR)
            if h <= 1e-14 * max(abs(t), 1.0):
                return t, STEP_UNDERFLOW, accepted, rejected
        save(j, y)
    return -1.0, 0, accepted, rejected
