"""The largest learning rate at which the Saad-Solla fixed point Q = M = P = I is stable, from
its linearisation: the check of experiments/ode_lr_threshold_K*.toml (docs/refinement.md §7).

Run: python experiments/ode_stability.py [results/ode_lr_threshold_K1.zarr ...]

The overlap ODEs of an erf soft committee (K = M, v = v* = 1, no noise, time = steps / d) are
written here again from docs/twolayer.md §6.2 (I3, I4 of g(x) = erf(x / sqrt 2)), in plain
numpy, apart from the `ode` kernel's numba code. First they are checked against the kernel:
the kernel's Q and M after a short time against this right-hand side at the grid's start.
Then the Jacobian at the fixed point (central differences over the K(K+1)/2 + K^2 independent
overlaps) gives, as a function of lr, its largest real eigenvalue; the learning rate at which
it crosses zero is the threshold the refined stores must locate. With store paths, each
store's located threshold (`sweeper.thresholds`) is printed beside it.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

HERE = Path(__file__).resolve().parent


def i3(c: np.ndarray, a: int, b: int, e: int) -> float:
    """E[g'(h_a) h_b g(h_e)] for g(x) = erf(x / sqrt 2), h ~ N(0, c)."""
    u1, u3 = 1 + c[a, a], 1 + c[e, e]
    return 2 / np.pi * (c[b, e] * u1 - c[a, b] * c[a, e]) / (u1 * np.sqrt(u1 * u3 - c[a, e] ** 2))


def i4(c: np.ndarray, a: int, b: int, e: int, f: int) -> float:
    """E[g'(h_a) g'(h_b) g(h_e) g(h_f)] for g(x) = erf(x / sqrt 2), h ~ N(0, c)."""
    l4 = (1 + c[a, a]) * (1 + c[b, b]) - c[a, b] ** 2
    l0 = (
        l4 * c[e, f]
        - c[b, e] * c[b, f] * (1 + c[a, a])
        - c[a, e] * c[a, f] * (1 + c[b, b])
        + c[a, b] * c[a, e] * c[b, f]
        + c[a, b] * c[a, f] * c[b, e]
    )
    l1 = (
        l4 * (1 + c[e, e])
        - c[b, e] ** 2 * (1 + c[a, a])
        - c[a, e] ** 2 * (1 + c[b, b])
        + 2 * c[a, b] * c[a, e] * c[b, e]
    )
    l2 = (
        l4 * (1 + c[f, f])
        - c[b, f] ** 2 * (1 + c[a, a])
        - c[a, f] ** 2 * (1 + c[b, b])
        + 2 * c[a, b] * c[a, f] * c[b, f]
    )
    return 4 / np.pi**2 / np.sqrt(l4) * np.arcsin(l0 / np.sqrt(l1 * l2))


def rhs(q: np.ndarray, m: np.ndarray, lr: float) -> tuple[np.ndarray, np.ndarray]:
    """dQ/dt, dM/dt of one-pass SGD (Saad & Solla 1995) for the soft committee, P = I."""
    k = q.shape[0]
    c = np.block([[q, m], [m.T, np.eye(m.shape[1])]])  # students 0..K-1, teachers K..K+M-1
    students, teachers = range(k), range(k, k + m.shape[1])
    sign = [(t, 1.0) for t in teachers] + [(j, -1.0) for j in students]  # e = sum g(nu) - sum g(lambda)
    dm = np.array([[lr * sum(s * i3(c, i, n, x) for x, s in sign) for n in teachers] for i in students])
    dq = np.zeros((k, k))
    for i in students:
        for j in students:
            first = sum(s * (i3(c, i, j, x) + i3(c, j, i, x)) for x, s in sign)
            second = sum(s * r * i4(c, i, j, x, y) for x, s in sign for y, r in sign)
            dq[i, j] = lr * first + lr**2 * second
    return dq, dm


def jacobian(k: int, lr: float, h: float = 1e-6) -> np.ndarray:
    """d(rhs)/d(overlaps) at Q = M = I, over Q's upper triangle and all of M."""
    iu = np.triu_indices(k)

    def flat(q, m):
        return np.concatenate([q[iu], m.ravel()])

    def unflat(z):
        q = np.zeros((k, k))
        q[iu] = z[: len(iu[0])]
        q = q + np.triu(q, 1).T
        return q, z[len(iu[0]) :].reshape(k, k)

    z0 = flat(np.eye(k), np.eye(k))
    cols = []
    for n in range(z0.size):
        dz = np.zeros_like(z0)
        dz[n] = h
        plus, minus = rhs(*unflat(z0 + dz), lr), rhs(*unflat(z0 - dz), lr)
        cols.append((flat(*plus) - flat(*minus)) / (2 * h))
    return np.array(cols).T


def growth_rate(k: int, lr: float) -> float:
    """The largest real part of the Jacobian's eigenvalues at the fixed point."""
    return float(np.linalg.eigvals(jacobian(k, lr)).real.max())


def critical_lr(k: int, lo: float = 0.5, hi: float = 10.0) -> float:
    """Where the fixed point loses stability: the growth rate crosses zero (bisection, to 1e-10)."""
    return brentq(lambda lr: growth_rate(k, lr), lo, hi, xtol=1e-10)


def check_against_kernel(k: int, q0: np.ndarray, m0: np.ndarray, lr: float, dt: float = 1e-4) -> float:
    """The kernel's overlaps after `dt` against one Euler step of :func:`rhs`: the relative difference."""
    from kernels import get_kernel

    ode = get_kernel("ode")()
    p = ode.make_params(
        K=k,
        M=k,
        lr=lr,
        init="explicit",
        Q0=q0.tolist(),
        M0=m0.tolist(),
        t_max=dt,
        n_times=2,
        dt=dt / 10,
        rtol=1e-12,
        atol=1e-14,
    )
    out = ode.run(p, 0).outputs
    dq, dm = rhs(q0, m0, lr)
    kernel = np.concatenate([(out["Q"][-1] - q0).ravel(), (out["M"][-1] - m0).ravel()]) / dt
    here = np.concatenate([dq.ravel(), dm.ravel()])
    return float(np.abs(kernel - here).max() / np.abs(here).max())


def main(stores: list[str]) -> None:
    critical = {}
    for k in (1, 2, 3):
        grid = tomllib.loads((HERE / f"ode_lr_threshold_K{k}.toml").read_text())
        q0, m0 = np.array(grid["params"]["Q0"], float), np.array(grid["params"]["M0"], float)
        lr_c = critical[k] = critical_lr(k)
        mismatch = check_against_kernel(k, q0, m0, lr_c)
        print(
            f"K = M = {k}: lr_c = {lr_c:.6f} (linear stability); rhs vs kernel at the start: {mismatch:.1e}"
        )
    for path in stores:
        import sweeper

        ds = sweeper.open(path)
        found = sweeper.thresholds(ds).isel(crossing=0)
        lower, upper = float(found.lower), float(found.upper)
        lr_c = critical[_k_of(ds)]
        off = abs((lower + upper) / 2 - lr_c) / lr_c
        print(
            f"{path}: located in [{lower:.6f}, {upper:.6f}]; its middle is {100 * off:.3f} % from "
            f"lr_c ({'within' if off <= 1e-3 else 'NOT within'} 0.1 %)"
        )


def _k_of(ds) -> int:
    return int(tomllib.loads(ds.attrs["grid_text"])["params"]["K"])


if __name__ == "__main__":
    main(sys.argv[1:])
