"""Speed of the simulators' hot loops (`sgd_multipass`, `sgd_online`), measured side by side in one run.

Usage::

    python bench/sgd.py            # both simulators
    python bench/sgd.py multipass  # or: online

Mode ``multipass`` (d = 1000 and 4000, alpha = 2, SGD with b = 0.3, and GD): microseconds
per step of :func:`kernels.singlelayer.sgd_multipass.simulation.advance`, and its ratio to

- the bare cost of the two BLAS matvecs a full-batch step must do, ``X @ w`` and
  ``X.T @ c`` (the goal is <= 1.5x); the kernel only touches the rows in the
  batch, so at b = 0.3 it can be below 1;
- a plain numpy implementation of the same step (written below).

Mode ``online``: microseconds per one-pass SGD step at d = 100, K = 8, M = 4
(public Cython simulator rodsveiga/phdiag_sgd: 116 us/step on this machine
class, the reference timings of the science notes) and d = 1000, K = M = 2
(sgoldt/nn2pp C++: 39 us/step), against a plain numpy loop; the goal at
d = 100, K = 8, M = 4 is <= 20 us/step.

Timings are medians of repeats, single-threaded BLAS (``OPENBLAS_NUM_THREADS=1``
is set before numpy is imported) so that the comparison is core for core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels.singlelayer.losses import LOSS_CODES  # noqa: E402
from kernels.singlelayer.model import MODEL_CODES, sample_weight, selection_probabilities  # noqa: E402
from kernels.singlelayer.sgd_multipass import SGDMultipassKernel  # noqa: E402
from kernels.singlelayer.sgd_multipass.simulation import advance, draw_problem, initial_weights  # noqa: E402


def median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# -- sgd_multipass ----------------------------------------------------------------------------------


def numpy_multipass_steps(X, y, w, s, uniforms, p_stay, p_enter, s_hat, lr, ridge):
    """The same SGD step in plain numpy (square loss)."""
    sqrt_d = math.sqrt(X.shape[1])
    for k in range(uniforms.shape[0]):
        r = X @ w / sqrt_d
        c = s_hat * s * (r - y)
        w = (1.0 - lr * ridge) * w - lr * (X.T @ c) / sqrt_d
        s = (uniforms[k] < np.where(s > 0, p_stay, p_enter)).astype(np.float64)
    return w


def bench_multipass(d: int, steps: int, b: float = 0.3) -> None:
    algorithm = "gd" if b == 1 else "sgd"
    p = SGDMultipassKernel.make_params(d=d, alpha=2.0, algorithm=algorithm, b=b, ridge=0.1, lr=0.05)
    v, X, y = draw_problem(p, d, 0)
    w0 = initial_weights(p, v, 0)
    n = X.shape[0]
    gen = np.random.default_rng(1)
    uniforms = gen.random((steps, n))
    s0 = (gen.random(n) < p.b).astype(np.float64)
    if algorithm == "gd":
        uniforms = np.zeros((steps, 0))  # GD draws no batches
    p_enter, p_leave = selection_probabilities(p)
    empty = np.zeros((0, 0))
    W, G = np.zeros((1, d)), np.zeros((1, d))

    def kernel_steps():
        W[0] = w0
        advance(
            steps, X, y, W, 1, s0.copy(), uniforms, empty, 1 - p_leave, p_enter, sample_weight(p),
            p.lr, p.ridge, 0.0, 0, 1.0, LOSS_CODES["square"], MODEL_CODES["glm"], 1.0, G,
        )  # fmt: skip

    kernel_steps()  # compile
    t_kernel = median_time(kernel_steps, 3) / steps
    c = np.random.default_rng(2).standard_normal(n)
    t_blas = median_time(lambda: [X @ w0 for _ in range(10)]) / 10
    t_blas += median_time(lambda: [X.T @ c for _ in range(10)]) / 10
    k_np = max(3, steps // 4)
    u_np = uniforms[:k_np] if algorithm != "gd" else np.ones((k_np, n))
    args = (X, y, w0, s0, u_np, 1 - p_leave, p_enter, sample_weight(p), p.lr, p.ridge)
    t_numpy = median_time(lambda: numpy_multipass_steps(*args), 3) / k_np
    print(
        f"multipass d={d:5d} n={n:5d} b={b:.1f}: {t_kernel * 1e6:9.1f} us/step | "
        f"2 BLAS matvecs {t_blas * 1e6:9.1f} us (ratio {t_kernel / t_blas:5.2f}) | "
        f"numpy loop {t_numpy * 1e6:9.1f} us (ratio {t_kernel / t_numpy:5.2f})"
    )


# -- sgd_online --------------------------------------------------------------------------------------


def numpy_online_steps(W, v, Wt, vt, xs, noise, lr):
    """The same one-pass erf SGD step in plain numpy (Goldt convention)."""
    from scipy.special import erf

    sqrt_d = math.sqrt(W.shape[1])
    for k in range(xs.shape[0]):
        x = xs[k]
        y = vt @ erf(Wt @ x / sqrt_d / math.sqrt(2)) + noise[k]
        lam = W @ x / sqrt_d
        e = y - v @ erf(lam / math.sqrt(2))
        W = W + (lr / sqrt_d) * np.outer(v * math.sqrt(2 / math.pi) * np.exp(-0.5 * lam**2) * e, x)
    return W


def bench_online(d: int, K: int, M: int, steps: int, anchor: str) -> None:
    from kernels.twolayer.model import draw_weights
    from kernels.twolayer.sgd_online import SGDOnlineKernel
    from kernels.twolayer.sgd_online.normals import generator_state
    from kernels.twolayer.sgd_online.simulation import run_steps

    p = SGDOnlineKernel.make_params(d=d, K=K, M=M, lr=0.1, noise=1e-3)
    W0, Wt, v, vt = draw_weights(p, 0)
    lam, x = np.zeros(K), np.zeros(d)
    states = generator_state(np.random.default_rng(1)), generator_state(np.random.default_rng(2))

    def kernel_steps():
        # exactly what the kernel does between two saved times (inputs drawn in the loop)
        W = W0.copy()
        run_steps(p, W, v.copy(), Wt, vt, steps, *states, lam, x)

    kernel_steps()
    t_kernel = median_time(kernel_steps) / steps
    k_np = steps // 10
    gen = np.random.default_rng(3)
    xs, noise = gen.standard_normal((k_np, d)), np.zeros(k_np)
    t_numpy = median_time(lambda: numpy_online_steps(W0, v, Wt, vt, xs, noise, 0.1), 3) / k_np
    print(
        f"online d={d:5d} K={K} M={M}: {t_kernel * 1e6:7.2f} us/step (incl. drawing x) | "
        f"numpy loop {t_numpy * 1e6:7.1f} us (ratio {t_kernel / t_numpy:5.3f}) | {anchor}"
    )


if __name__ == "__main__":
    which = sys.argv[1:] or ["multipass", "online"]
    if "multipass" in which:
        for d, steps in ((1000, 200), (4000, 20)):
            bench_multipass(d, steps, 0.3)
            bench_multipass(d, steps, 1.0)  # GD: every row, the full cost of the two matvecs
    if "online" in which:
        bench_online(100, 8, 4, 100_000, "anchor: phdiag_sgd Cython 116 us/step, goal <= 20")
        bench_online(1000, 2, 2, 50_000, "anchor: nn2pp C++ 39 us/step")
