"""Engine cost per point, side by side with xyzpy and Ray Tune, measured the same way on both sides.

Run: python bench/engine_overhead.py [--points 100000] [--repeat 3]   (needs `pip install -e ".[bench]"`)

Prints, in one run on this machine:

1. **Whole process to whole process** (what a user waits for): a fresh Python process that
   imports, runs N trivial points and writes them to a zarr store, for
   - sweeper, as `sweeper submit` runs a grid with no `workers` set (a pilot decides between
     this process and a private Ray),
   - sweeper on a private Ray with 2 workers (Ray's start-up included),
   - xyzpy's `Runner.run_combos` on a `ProcessPoolExecutor(2)` (the strongest cheap anchor),
     then `to_zarr`, and xyzpy serial;
   each command run ``--repeat`` times, interleaved, median wall time.
2. **Warm to warm**: the per-point wall time once everything is started (our actors warm,
   xyzpy's pool warm), zarr writes included on both sides.
3. Parallel efficiency on 2 workers for 1 ms and 10 ms points.
4. Ray Tune (grid_search, reuse_actors, loggers off), all inclusive, against our all-inclusive
   per-point time on Ray.

Every ratio divides like by like: whole process by whole process, warm by warm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
warnings.filterwarnings("ignore", message="Consolidated metadata")  # zarr's, on both sides
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kernels.base import Kernel, Output  # noqa: E402
from kernels.registry import register  # noqa: E402
from sweeper import api, scheduler  # noqa: E402
from sweeper.executors import InProcessExecutor, RayExecutor  # noqa: E402
from sweeper.grid_file import parse_spec  # noqa: E402


@dataclass(frozen=True, kw_only=True)
class TrivialParams:
    x: float = 0.0
    y: float = 0.0
    work_ms: float = 0.0


def busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def trivial(x: float, y: float, work_ms: float = 0.0) -> float:
    if work_ms:
        busy(work_ms)
    return x * y


@register
class Trivial(Kernel):
    """A product of two numbers (benchmark only), optionally after busy work."""

    name = "bench_trivial"
    version = "1"
    Params = TrivialParams
    outputs = {"z": Output((), "x times y")}
    example = {"x": 1.0, "y": 2.0}

    def _run(self, p, seed):
        return {"z": trivial(p.x, p.y, p.work_ms)}


def grid(n_x: int, n_y: int, work_ms: float, block_size: int, workers: int | None, store: str):
    workers_line = "" if workers is None else f"workers = {workers}"
    text = f"""
kernel = "bench_trivial"
name = "bench"
[params]
work_ms = {work_ms}
[sweep]
x = {{linspace = [0, 1, {n_x}]}}
y = {{linspace = [0, 1, {n_y}]}}
[run]
block_size = {block_size}
{workers_line}
store = "{store}"
"""
    return parse_spec(text)


def shape(n: int) -> tuple[int, int]:
    n_x = int(round(np.sqrt(n)))
    return n_x, int(round(n / n_x))


# -- 1. whole process to whole process: each child is one of these ----------------------------
def child(kind: str, n: int, store: str) -> None:
    n_x, n_y = shape(n)
    if kind.startswith("sweeper"):
        workers = {"sweeper": None, "sweeper-ray": 2}[kind]
        spec = grid(n_x, n_y, 0.0, 1000, workers, store)
        summary = api.sweep(spec, overwrite=True, progress=False)[1]
        assert summary.ok == spec.n_points, summary
        return
    import xyzpy as xyz

    runner = xyz.Runner(trivial, var_names="z")
    combos = {"x": np.linspace(0, 1, n_x), "y": np.linspace(0, 1, n_y)}
    if kind == "xyzpy-pool":
        with ProcessPoolExecutor(2) as pool:
            ds = runner.run_combos(combos, executor=pool, verbosity=0)
    else:
        ds = runner.run_combos(combos, verbosity=0)
    assert ds["z"].size == n_x * n_y
    ds.to_zarr(store, mode="w")


def whole_process(n: int, repeat: int, tmp: str) -> dict[str, float]:
    kinds = ("sweeper", "sweeper-ray", "xyzpy-pool", "xyzpy-serial")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(repeat):
        for kind in kinds:  # interleaved: a load change hits every command alike
            store = f"{tmp}/{kind}-{n}.zarr"
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--child", kind, str(n), store], check=True)
            times[kind].append(time.perf_counter() - start)
            shutil.rmtree(store, ignore_errors=True)
    return {k: statistics.median(v) for k, v in times.items()}


# -- 2. warm to warm ----------------------------------------------------------------------------
def warm_sweep(spec) -> float:
    """Wall time of one sweep with the executor's workers started and warm before the clock."""
    spec, template = api.prepare(spec)
    store = api.open_store(spec, template, overwrite=True)
    if spec.options.workers == 0:
        executor = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs)
    else:
        options = spec.options
        executor = RayExecutor(spec.kernel_class(), spec.fixed, options.outputs, workers=options.workers)
        executor.wait_ready()
    start, cpu = time.perf_counter(), time.process_time()
    summary = scheduler.sweep(spec, store, executor)
    wall = time.perf_counter() - start
    warm_sweep.driver_cpu = time.process_time() - cpu  # the scheduler and the zarr writer
    executor.close()
    assert summary.ok == spec.n_points, summary
    return wall


def xyzpy_warm(n: int, store: str) -> float:
    import xyzpy as xyz

    n_x, n_y = shape(n)
    runner = xyz.Runner(trivial, var_names="z")
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(trivial, [0.0, 1.0], [1.0, 1.0]))  # both processes started and warm
        start = time.perf_counter()
        ds = runner.run_combos(
            {"x": np.linspace(0, 1, n_x), "y": np.linspace(0, 1, n_y)}, executor=pool, verbosity=0
        )
        ds.to_zarr(store, mode="w")
        return time.perf_counter() - start


def tune_per_point(n: int) -> float:
    from ray import tune

    def trainable(config):
        return {"z": trivial(config["x"], config["y"])}

    storage = tempfile.mkdtemp(prefix="bench-tune-")
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search(list(np.linspace(0, 1, n))), "y": 0.5},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, verbose=0, log_to_file=False),
    )
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    assert results.num_errors == 0
    shutil.rmtree(storage, ignore_errors=True)
    return wall / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    n = args.points
    tmp = tempfile.mkdtemp(prefix="bench-engine-")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    print(f"\n1. whole process to whole process, {n} trivial points to a zarr store", end="")
    print(f" (median of {args.repeat})")
    whole = whole_process(n, args.repeat, tmp)
    for kind, wall in whole.items():
        ratio = wall / whole["sweeper"]
        print(f"  {kind:14s} {wall:7.2f} s  {wall / n * 1e6:8.1f} us/pt  {ratio:5.2f} x sweeper's time")

    from sweeper.cluster import connect_ray

    _, session = connect_ray(None, 2)  # a private Ray for the warm runs (its folder removed at the end)
    print("\n2. warm to warm (workers started and warm before the clock; zarr writes included)")
    n_x, n_y = shape(n)
    warm = {}
    for workers in (0, 2):
        spec = grid(n_x, n_y, 0.0, 1000, workers, f"{tmp}/warm{workers}.zarr")
        warm[f"sweeper, {'in process' if workers == 0 else 'Ray, 2 workers'}"] = warm_sweep(spec) / n
    try:
        warm["xyzpy, ProcessPoolExecutor(2)"] = xyzpy_warm(n, f"{tmp}/xyzpy-warm.zarr") / n
    except ImportError as exc:
        print(f"  xyzpy: skipped ({exc})")
    best = min(v for k, v in warm.items() if k.startswith("sweeper"))
    for label, per_point in warm.items():
        print(f"  {label:34s} {per_point * 1e6:8.2f} us/pt  {per_point / best:6.2f} x sweeper's best")

    print("\n3. parallel efficiency on 2 workers (steady state, actors warm, zarr writes included;")
    print("   the driver shares the 2 cores with the workers, so its CPU per block is lost to them)")
    for work_ms, n_x, block in ((1.0, 4000, 50), (1.0, 4000, 200), (10.0, 600, 10), (10.0, 600, 30)):
        spec = grid(n_x, 1, work_ms, block, 2, f"{tmp}/busy{work_ms}-{block}.zarr")
        wall = warm_sweep(spec)
        ideal = spec.n_points * work_ms / 1000 / 2
        print(
            f"  {work_ms:4.0f} ms points x {spec.n_points}, blocks of {block:3d}: wall {wall:6.2f} s, "
            f"ideal {ideal:5.2f} s, efficiency {ideal / wall:6.1%}, "
            f"driver CPU {warm_sweep.driver_cpu / spec.layout.n_blocks * 1e3:5.1f} ms/block"
        )

    print("\n4. Ray Tune, all inclusive (its Ray already running), against sweeper on Ray all inclusive")
    try:
        tune = tune_per_point(200)
        ours = whole["sweeper-ray"] / n
        label = "Ray Tune grid_search, reuse_actors, 200 trials"
        print(f"  {label} {tune * 1e3:9.3f} ms/pt = {tune / ours:6.0f} x sweeper's")
    except Exception as exc:  # noqa: BLE001 - a missing optional dependency is reported, not fatal
        print(f"  Ray Tune: skipped ({type(exc).__name__}: {exc})")
    session.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
