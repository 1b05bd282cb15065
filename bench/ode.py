"""Cost of one Euler step of the overlap ODEs (`ode` kernel) against public implementations.

Usage::

    python bench/ode.py                  # the three workloads below, median of 3
    python bench/ode.py --repeat 5 --steps-large 200000

Workloads (erf units, all run through ``kernels.twolayer.ode.integrate`` after one warm-up call that
compiles or loads the numba cache; the wall time of a full ``ODEKernel.run`` is printed too):

* ``K=M=2, I4 on``: Saad-Solla committee, lr 0.5, dt 0.01, 10^6 Euler steps. Anchor:
  sgoldt/nn2pp ``scmpp_ode`` (C++), 1.13 us per step (reference timings).
* ``p=8, k=4, I4 on`` / ``I4 off``: committee ``mean``, the blue-line / green-region setting of
  Veiga et al. Anchor: rodsveiga/phdiag_sgd (Cython) 64.6 / 7.4 us per step.

The anchors were timed separately on this machine class (2 cores, quiet); this script cannot
run them, so the ratios carry the machine-load noise of this run only on our side. Both the
wall time and the process CPU time of the loop are printed: on a shared machine the CPU time
is the fairer comparison with a quiet-machine anchor (it still inflates when hyperthreads
are contended). Ratio > 1 means we are faster.

Sweep estimate (from the p=8, k=4 rows, wall 13.2 / 0.83 us per step at load 2.5 on 2 cores):
a point of ``experiments/veiga_phase_diagram.toml`` is 20 020 Euler steps (t = 1000 at
dt = 0.05 on its 41-point log grid), ~0.26 s with I4 (blue, orange, red) and ~0.017 s without
(green). A 10^4-point (kappa, delta) grid over that file's ranges is 2/3 green, ~0.10 s per
point: ~8 min on 2 workers per seed (~17 min for its 2 seeds), ~22 min per seed if every
point keeps I4; engine overhead not included. Whole points timed directly: 0.17 s / 0.013 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kernels.timegrid import saved_times, substeps  # noqa: E402
from kernels.twolayer.model import activation_code  # noqa: E402
from kernels.twolayer.ode import ODEKernel, initial_state, integrate, rates  # noqa: E402

ANCHORS = {
    "K=M=2, I4 on": ("sgoldt/nn2pp C++", 1.13),
    "p=8 k=4, I4 on": ("rodsveiga/phdiag_sgd Cython", 64.6),
    "p=8 k=4, I4 off": ("rodsveiga/phdiag_sgd Cython", 7.4),
}


def workload(name: str, steps: int) -> dict:
    dt = 0.01
    common = {"dt": dt, "t_max": steps * dt, "n_times": 101, "d": 1000}
    if name.startswith("K=M=2"):
        return {"K": 2, "M": 2, "lr": 0.5, **common}
    return {
        "K": 8, "M": 4, "committee": "mean", "lr": 8.0, "noise": 1e-3,
        "quadratic_terms": name.endswith("on"), **common,
    }  # fmt: skip


def time_integrate(values: dict, repeat: int) -> tuple[float, float, int]:
    params = ODEKernel.make_params(**values)
    code = activation_code(params)
    a1, a2, av, wd, wv = rates(params)
    times = saved_times(params)
    n_sub = substeps(times, params.dt)
    z = np.zeros((1, 3))
    nt, K, Mt = len(times), params.K, params.M

    def once() -> tuple[float, float]:
        Q, M, P, v, vs = (np.ascontiguousarray(a, dtype=float) for a in initial_state(params, 0))
        bufs = (np.empty((nt, K, K)), np.empty((nt, K, Mt)), np.empty((nt, K)), np.empty(nt))
        t0, c0 = time.perf_counter(), time.process_time()
        fail = integrate(code, Q, M, P, v, vs, a1, a2, av, wd, wv, params.noise, times, n_sub, z, *bufs, 1e6)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert fail < 0, f"integration failed at time {fail}"
        return elapsed, cpu

    once()  # compile / load the cache
    runs = np.array([once() for _ in range(repeat)])
    return float(np.median(runs[:, 0])), float(np.median(runs[:, 1])), int(n_sub.sum())


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps-small", type=int, default=1_000_000, help="Euler steps, K=M=2")
    parser.add_argument("--steps-large", type=int, default=100_000, help="Euler steps, p=8 k=4")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times inflate under load)")
    print(
        f"{'workload':<18} {'steps':>9} {'loop s':>8} {'us/step':>8} {'cpu us':>8} {'run() s':>8}"
        "  anchor us/step                    ratio (wall, cpu)"
    )
    for name, (anchor, anchor_us) in ANCHORS.items():
        steps = args.steps_small if name.startswith("K=M=2") else args.steps_large
        values = workload(name, steps)
        loop, cpu, n = time_integrate(values, args.repeat)
        t0 = time.perf_counter()
        result = ODEKernel().run(ODEKernel.make_params(**values), seed=0)
        wall = time.perf_counter() - t0
        assert result.ok, result.message
        us, cpu_us = loop / n * 1e6, cpu / n * 1e6
        print(
            f"{name:<18} {n:>9d} {loop:>8.3f} {us:>8.3f} {cpu_us:>8.3f} {wall:>8.3f}  "
            f"{anchor_us:>6.2f} ({anchor:<28}) {anchor_us / us:5.2f}x {anchor_us / cpu_us:5.2f}x"
        )


if __name__ == "__main__":
    main()
