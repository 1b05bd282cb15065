"""The `amp` and `gamp` kernels: a 200-point alpha curve of state evolution, and GAMP's cost
per iteration against the BLAS products it cannot avoid.

Usage::

    python bench/amp.py curve          # 200-point alpha curves, warm and whole process, min of 3
    python bench/amp.py gamp           # GAMP: time per iteration / time of its two matvecs, min of 3

``curve``: one `amp` point (default parameters: a 30-iteration path with its free entropy, and
the fixed points from both starts) per alpha, 200 alphas, for four settings. *Warm*: in this
process after one warm-up point (numba compiled or loaded from its cache). *Whole process*: a
fresh ``python`` that imports the kernel (the phase-retrieval tables are built at import),
runs the curve and exits, timed from outside. Goal: < 5 s on one core.

``gamp``: for each ``d`` (alpha = 2, sign channel, Gaussian prior), GAMP's time per iteration
(:func:`kernels.singlelayer.amp.gamp.iterate`, 20 iterations on a drawn problem: drawing the
data is excluded), against the time of ``X @ a`` plus ``X.T @ g`` with single-threaded BLAS
(the kernel's setting), wall and process CPU time. Goal: ratio < 1.5.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {
    "phase retrieval, Gaussian prior": dict(teacher="abs", prior="gaussian", lo=0.3, hi=2.0),
    "perceptron, ±1 prior": dict(teacher="sign", prior="rademacher", lo=0.5, hi=2.5),
    "perceptron, Gaussian prior": dict(teacher="sign", prior="gaussian", lo=0.5, hi=5.0),
    "linear, Gaussian prior, noise 0.1": dict(teacher="linear", prior="gaussian", lo=0.2, hi=3.0, noise=0.1),
}
POINTS = 200


def curve(setting: dict) -> tuple[float, int]:
    """Seconds for the 200-point curve, and the number of failed points."""
    from kernels.singlelayer.amp import AMPKernel

    kernel = AMPKernel()
    fixed = {k: v for k, v in setting.items() if k not in ("lo", "hi")}
    kernel.run(kernel.make_params(alpha=setting["lo"], **fixed))  # warm-up
    start = time.perf_counter()
    failed = 0
    for alpha in np.linspace(setting["lo"], setting["hi"], POINTS):
        failed += not kernel.run(kernel.make_params(alpha=float(alpha), **fixed)).ok
    return time.perf_counter() - start, failed


def bench_curve() -> None:
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for name, setting in SETTINGS.items():
        warm = [curve(setting) for _ in range(3)]
        whole = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "one-curve", name],
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            whole.append(time.perf_counter() - start)
        print(
            f"{name:36s} warm {min(t for t, _ in warm):6.2f} s   whole process {min(whole):6.2f} s   "
            f"({POINTS} points, {warm[0][1]} failed: slow SE near a spinodal or alpha_IT)"
        )


def bench_gamp() -> None:
    from kernels._blas import single_threaded_blas
    from kernels.singlelayer.amp import GAMPKernel
    from kernels.singlelayer.amp.gamp import draw_problem, initial_estimate, iterate

    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    kernel = GAMPKernel()
    steps = 20
    for d in (500, 1000, 2000, 4000):
        p = kernel.make_params(d=d, alpha=2.0, teacher="sign", iterations=steps)
        w, X, y = draw_problem(p, d, 0)
        a0 = initial_estimate(p, w, 0)
        iterate(p, X, y, w, a0.copy())  # warm-up
        gamp, blas = [], []
        a, g = np.ones(d), np.ones(X.shape[0])
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            iterate(p, X, y, w, a0.copy())
            gamp.append(((time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps))
            with single_threaded_blas():
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(steps):
                    X @ a
                    X.T @ g
                blas.append(((time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps))
        (it_wall, it_cpu), (mv_wall, mv_cpu) = min(gamp), min(blas)
        print(
            f"d = {d:5d}, n = {X.shape[0]:5d}: GAMP {1e3 * it_wall:7.3f} ms/iteration "
            f"(CPU {1e3 * it_cpu:7.3f}), "
            f"two matvecs {1e3 * mv_wall:7.3f} ms (CPU {1e3 * mv_cpu:7.3f}), ratio {it_wall / mv_wall:.2f} "
            f"(CPU {it_cpu / mv_cpu:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["curve", "gamp", "one-curve"])
    parser.add_argument("setting", nargs="?")
    args = parser.parse_args()
    if args.what == "curve":
        bench_curve()
    elif args.what == "gamp":
        bench_gamp()
    else:
        curve(SETTINGS[args.setting])


if __name__ == "__main__":
    main()
