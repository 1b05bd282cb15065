"""The `ode` kernel against the public integrators: cost per Euler step, one Veiga et al. point
at the paper's settings, and a (kappa, delta) phase diagram at that accuracy.

Usage::

    python bench/ode.py steps                 # us per Euler step, three workloads, median of 3
    python bench/ode.py point                 # one Veiga point to t = 10^4, adaptive vs Euler (2e7 steps)
    python bench/ode.py point --euler-dt 0.01 # the same with a cheaper Euler, extrapolated to 1/2000
    python bench/ode.py scipy                 # the same point with scipy's solve_ivp (RK45, DOP853, LSODA)
    python bench/ode.py diagram --n 32        # N x N phase diagram through `sweeper submit`, 2 workers

``steps`` (erf units, run through :func:`kernels.twolayer.ode.euler.integrate_euler` after one
warm-up call that compiles or loads the numba cache):

* ``K=M=2, I4 on``: Saad-Solla committee, lr 0.5, dt 0.01, 10^6 Euler steps. Anchor:
  sgoldt/nn2pp ``scmpp_ode`` (C++), 1.13 us per step.
* ``p=8, k=4, I4 on`` / ``I4 off``: committee ``mean``, the blue-line / green-region setting of
  Veiga et al. Anchor: rodsveiga/phdiag_sgd (Cython) 64.6 / 7.4 us per step.

The anchors were timed separately on this machine class (2 cores, quiet; docs/ode.md §8); this
script does not build or run them, so a public code's time for a whole point is its per-step
anchor times its step count. Wall and process CPU time are both printed: on a shared machine
the CPU time is the fairer comparison with a quiet-machine anchor.

``point``: p = 8, k = 4, mean committee, lr 1, noise 1e-3 on the blue line (kappa = delta = 0:
every term kept, the most expensive region) to t = 10^4 on an 81-point log grid. The reference
is the adaptive integrator at rtol 1e-11 (tests/kernels/twolayer/test_ode_adaptive.py checks
it against Euler's Richardson limit). Printed for each integrator: steps, wall and CPU time,
and the largest error of the saved risk, Q and M against the reference.

``diagram``: experiments/veiga_phase_diagram.toml with ``N`` points per axis (32 is the shipped
grid), submitted with ``sweeper submit --workers 2`` into a temporary store; wall time of the
whole command (Ray start included), failed points, and the steps taken.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kernels.timegrid import saved_times, substeps  # noqa: E402
from kernels.twolayer.model import activation_code  # noqa: E402
from kernels.twolayer.ode.equations import pack  # noqa: E402
from kernels.twolayer.ode.euler import integrate_euler  # noqa: E402
from kernels.twolayer.ode.kernel import ODEKernel, initial_state, rates  # noqa: E402

ANCHORS = {
    "K=M=2, I4 on": ("sgoldt/nn2pp C++", 1.13),
    "p=8 k=4, I4 on": ("rodsveiga/phdiag_sgd Cython", 64.6),
    "p=8 k=4, I4 off": ("rodsveiga/phdiag_sgd Cython", 7.4),
}
PAPER_DT = 1 / 2000  # Veiga et al.'s Euler step, to t = 10^4: 2e7 steps a point
VEIGA_POINT = {
    "K": 8, "M": 4, "d": 1000, "committee": "mean", "lr": 1.0, "noise": 1e-3, "kappa": 0.0, "delta": 0.0,
    "t_max": 1e4, "n_times": 81, "time_spacing": "log", "t_min": 0.1,
}  # fmt: skip


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times inflate under load)"


# -- cost per Euler step ---------------------------------------------------------------------


def workload(name: str, steps: int) -> dict:
    dt = 0.01
    common = {"dt": dt, "t_max": steps * dt, "n_times": 101, "d": 1000, "integrator": "euler"}
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
        y = pack(Q, M, v)
        bufs = (np.empty((nt, K, K)), np.empty((nt, K, Mt)), np.empty((nt, K)), np.empty(nt))
        t0, c0 = time.perf_counter(), time.process_time()
        fail = integrate_euler(
            code, y, P, vs, a1, a2, av, wd, wv, params.noise, True, z, times, n_sub, *bufs, 1e6
        )
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert fail < 0, f"integration failed at time {fail}"
        return elapsed, cpu

    once()  # compile / load the cache
    runs = np.array([once() for _ in range(repeat)])
    return float(np.median(runs[:, 0])), float(np.median(runs[:, 1])), int(n_sub.sum())


def bench_steps(args: argparse.Namespace) -> None:
    print(load())
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


# -- one Veiga point at the paper's settings -------------------------------------------------


def run_point(**values) -> tuple[dict, float, float]:
    kernel = ODEKernel()
    params = ODEKernel.make_params(**{**VEIGA_POINT, **values})
    t0, c0 = time.perf_counter(), time.process_time()
    result = kernel.run(params, seed=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert result.ok, result.message
    return result.outputs, wall, cpu


def errors(out: dict, reference: dict) -> str:
    return "  ".join(f"{name} {np.abs(out[name] - reference[name]).max():.1e}" for name in ("risk", "Q", "M"))


def bench_point(args: argparse.Namespace) -> None:
    print(load())
    run_point(t_max=1.0, n_times=2)  # compile / load the cache
    run_point(t_max=1.0, n_times=2, integrator="euler")
    reference, wall, _ = run_point(rtol=1e-11, atol=1e-14)
    print(f"reference: adaptive rtol 1e-11, {reference['accepted_steps']:.0f} steps, {wall:.2f} s")
    print(f"{'integrator':<34} {'steps':>10} {'wall s':>8} {'cpu s':>8}  max error vs reference")
    for rtol in args.rtol:
        out, wall, cpu = run_point(rtol=rtol, atol=rtol * 1e-2)
        steps = f"{out['accepted_steps']:.0f}+{out['rejected_steps']:.0f}"
        print(
            f"{f'adaptive rtol {rtol:g}':<34} {steps:>10} {wall:>8.3f} {cpu:>8.3f}  {errors(out, reference)}"
        )
    out, wall, cpu = run_point(integrator="euler", dt=args.euler_dt)
    n = out["accepted_steps"]
    label = f"euler dt = {args.euler_dt:g}"
    print(f"{label:<34} {n:>10.0f} {wall:>8.2f} {cpu:>8.2f}  {errors(out, reference)}")
    if not np.isclose(args.euler_dt, PAPER_DT):
        # Euler is first order: its error and its cost both scale with dt
        scale = PAPER_DT / args.euler_dt
        err = "  ".join(
            f"{name} {scale * np.abs(out[name] - reference[name]).max():.1e}" for name in ("risk", "Q", "M")
        )
        label = "euler dt = 1/2000 (extrapolated)"
        print(f"{label:<34} {n / scale:>10.0f} {wall / scale:>8.1f} {cpu / scale:>8.1f}  {err}")
        n, wall = n / scale, wall / scale
    anchor = ANCHORS["p=8 k=4, I4 on"][1]
    print(f"{'phdiag_sgd (anchor x steps)':<34} {n:>10.0f} {n * anchor * 1e-6:>8.0f}")


# -- a library instead: scipy's solve_ivp on the same right-hand side ------------------------


def bench_scipy(args: argparse.Namespace) -> None:
    from scipy.integrate import solve_ivp

    from kernels.twolayer.ode.equations import derivative, workspace

    print(load())
    params = ODEKernel.make_params(**VEIGA_POINT)
    Q, M, P, v, vs = (np.ascontiguousarray(a, dtype=float) for a in initial_state(params, 0))
    a1, a2, av, wd, wv = rates(params)
    work = workspace(params.K, params.M, P, vs)
    z = np.zeros((1, 3))
    code = activation_code(params)

    def rhs(t, y):
        dy = np.empty_like(y)
        derivative(code, params.K, params.M, y, dy, a1, a2, av, wd, wv, params.noise, True, z, work)
        return dy

    times = saved_times(params)
    y0 = pack(Q, M, v)
    rhs(0.0, y0)  # compile
    reference, _, _ = run_point(rtol=1e-11, atol=1e-14)
    n_q = params.K * params.K
    print(f"{'integrator (rtol 1e-8, atol 1e-10)':<36} {'f evals':>8} {'wall s':>8} {'cpu s':>8}  error in Q")
    for method in ("RK45", "DOP853", "LSODA"):
        t0, c0 = time.perf_counter(), time.process_time()
        sol = solve_ivp(rhs, (0.0, times[-1]), y0, method=method, t_eval=times, rtol=1e-8, atol=1e-10)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        err = np.abs(sol.y[:n_q].T.reshape(-1, params.K, params.K) - reference["Q"]).max()
        print(f"{'scipy solve_ivp ' + method:<36} {sol.nfev:>8d} {wall:>8.2f} {cpu:>8.2f}  {err:.1e}")
    out, wall, cpu = run_point()
    evals = 6 * (out["accepted_steps"] + out["rejected_steps"]) + 2
    print(f"{'ode adaptive (numba loop)':<36} {evals:>8.0f} {wall:>8.2f} {cpu:>8.2f}  "
          f"{np.abs(out['Q'] - reference['Q']).max():.1e}")  # fmt: skip


# -- the phase diagram -----------------------------------------------------------------------


def bench_diagram(args: argparse.Namespace) -> None:
    import xarray as xr

    grid = (ROOT / "experiments" / "veiga_phase_diagram.toml").read_text()
    grid = re.sub(r"(linspace = \[[^\]]*), 32\]", rf"\1, {args.n}]", grid)
    print(load())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.toml"
        path.write_text(grid)
        store = Path(args.store) if args.store else Path(tmp) / "diagram.zarr"
        command = [sys.executable, "-m", "sweeper.cli", "submit", str(path), "--store", str(store),
                   "--workers", str(args.workers), "--quiet"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        assert done.returncode == 0, done.stderr[-2000:]
        ds = xr.open_zarr(store)
        steps = ds["accepted_steps"].values
        failed = int(np.isnan(ds["risk"].isel(time=-1).values).sum())
    points = args.n * args.n
    print(
        f"{args.n} x {args.n} = {points} points on {args.workers} workers: {wall:.1f} s wall "
        f"({wall / points * 1e3:.0f} ms a point, Ray start included); {failed} failed; "
        f"{np.nansum(steps):.3g} adaptive steps in all ({np.nanmax(steps):.0f} at most a point)"
    )
    if args.n != 32:
        print(
            f"32 x 32 extrapolated: at most {wall / points * 1024:.0f} s "
            "(wall per point times 1024, Ray start included in each)"
        )
    euler_steps = 1024 * 1e4 / PAPER_DT
    print(f"the same diagram with Euler at dt = 1/2000 is {euler_steps:.2g} steps")


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="what", required=True)
    steps = sub.add_parser("steps", help="us per Euler step against the public codes")
    steps.add_argument("--repeat", type=int, default=3)
    steps.add_argument("--steps-small", type=int, default=1_000_000, help="Euler steps, K=M=2")
    steps.add_argument("--steps-large", type=int, default=100_000, help="Euler steps, p=8 k=4")
    point = sub.add_parser("point", help="one Veiga point at the paper's settings")
    point.add_argument("--euler-dt", type=float, default=PAPER_DT, help="Euler step (1/2000: the paper's)")
    point.add_argument("--rtol", type=float, nargs="*", default=[1e-5, 1e-6, 1e-8])
    sub.add_parser("scipy", help="the Veiga point with scipy's solve_ivp on the same right-hand side")
    diagram = sub.add_parser("diagram", help="N x N phase diagram through sweeper submit")
    diagram.add_argument("--n", type=int, default=32)
    diagram.add_argument("--workers", type=int, default=2)
    diagram.add_argument("--store", help="keep the store here (for the figure script); must not exist")
    args = parser.parse_args()
    {"steps": bench_steps, "point": bench_point, "scipy": bench_scipy, "diagram": bench_diagram}[args.what](
        args
    )


if __name__ == "__main__":
    main()
