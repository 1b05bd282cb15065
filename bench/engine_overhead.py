"""Engine overhead per point and parallel efficiency, side by side with Ray Tune and xyzpy.

Run: python bench/engine_overhead.py   (needs `pip install -e ".[bench]"`)

Prints, in one run on this machine:
1. throughput and overhead per point for ~10^5 trivial points, in process and on 2 Ray
   workers, end to end including the zarr writes (overhead = wall time minus pure compute);
2. parallel efficiency on 2 workers for 1 ms and 10 ms points;
3. the same trivial points through Ray Tune (grid_search, reuse_actors, loggers off) and
   through xyzpy with its Ray executor, with the ratios of per-point overhead.
"""

import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

from kernels.base import Kernel, Output  # noqa: E402
from kernels.registry import register  # noqa: E402
from sweeper import api, scheduler  # noqa: E402
from sweeper.executors import RayExecutor  # noqa: E402
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

    def outputs(self, params):
        return {"z": Output((), "x times y")}

    def _run(self, p, seed):
        return {"z": trivial(p.x, p.y, p.work_ms)}


def grid(n_x: int, n_y: int, work_ms: float, block_size: int, workers: int, store: str):
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
workers = {workers}
store = "{store}"
"""
    return parse_spec(text)


def sweep(spec, overwrite=True):
    """Wall time of one sweep; Ray actors are created and warmed before the clock starts."""
    spec, template = api.prepare(spec)
    store = api.open_store(spec, template, overwrite=overwrite)
    if spec.options.workers == 0:
        executor = api.InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs)
    else:
        options = spec.options
        executor = RayExecutor(spec.kernel_class(), spec.fixed, options.outputs, workers=options.workers)
        executor.wait_ready()
    start, cpu = time.perf_counter(), time.process_time()
    summary = scheduler.sweep(spec, store, executor)
    wall = time.perf_counter() - start
    sweep.driver_cpu = time.process_time() - cpu  # the scheduler and the zarr writer, this process
    executor.close()
    assert summary.ok == spec.n_points, summary
    return wall


def pure_compute_per_point(n: int = 100_000) -> float:
    xs = np.linspace(0, 1, n)
    start = time.perf_counter()
    for x in xs:
        trivial(float(x), 0.5)
    return (time.perf_counter() - start) / n


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


def xyzpy_per_point(n: int) -> float:
    import xyzpy as xyz

    runner = xyz.Runner(trivial, var_names="z")
    executor = xyz.RayExecutor()
    start = time.perf_counter()
    ds = runner.run_combos({"x": np.linspace(0, 1, n)}, constants={"y": 0.5}, executor=executor, verbosity=0)
    wall = time.perf_counter() - start
    assert ds["z"].size == n
    return wall / n


def main() -> None:

    from sweeper.cluster import connect_ray

    tmp = tempfile.mkdtemp(prefix="bench-engine-")
    _, session = connect_ray(None, 2)  # a private Ray: its temp folder is removed at the end
    rows = []
    compute = pure_compute_per_point()

    for workers in (0, 2):
        spec = grid(316, 317, 0.0, 1000, workers, f"{tmp}/trivial{workers}.zarr")
        wall = sweep(spec)
        n = spec.n_points
        label = "in process" if workers == 0 else f"Ray, {workers} workers"
        rows.append((f"sweeper {label}, {n} trivial points", n / wall, wall / n - compute))

    print(f"pure compute of a trivial point: {compute * 1e6:.2f} us\n")
    print(f"{'run':58s} {'points/s':>10s} {'overhead/pt':>12s}")
    for label, rate, overhead in rows:
        print(f"{label:58s} {rate:10.0f} {overhead * 1e3:9.4f} ms")
    ours = rows[-1][2]

    print("\nparallel efficiency on 2 workers (steady state, actors warm, zarr writes included;")
    print("the driver shares the 2 cores with the workers, so its CPU per block is lost to them)")
    for work_ms, n_x, block in ((1.0, 4000, 50), (1.0, 4000, 200), (10.0, 600, 10), (10.0, 600, 30)):
        spec = grid(n_x, 1, work_ms, block, 2, f"{tmp}/busy{work_ms}-{block}.zarr")
        wall = sweep(spec)
        ideal = spec.n_points * work_ms / 1000 / 2
        print(
            f"  {work_ms:4.0f} ms points x {spec.n_points}, blocks of {block:3d}: wall {wall:6.2f} s, "
            f"ideal {ideal:5.2f} s, efficiency {ideal / wall:6.1%}, "
            f"driver CPU {sweep.driver_cpu / spec.layout.n_blocks * 1e3:5.1f} ms/block"
        )

    print("\nthe same trivial points elsewhere (per-point wall time, all inclusive)")
    others = []
    try:
        others.append(("xyzpy Runner + RayExecutor, 5000 points", xyzpy_per_point(5000)))
    except Exception as exc:  # noqa: BLE001 - a missing optional dependency is reported, not fatal
        print(f"  xyzpy: skipped ({type(exc).__name__}: {exc})")
    try:
        others.append(("Ray Tune grid_search, reuse_actors, 200 trials", tune_per_point(200)))
    except Exception as exc:  # noqa: BLE001
        print(f"  Ray Tune: skipped ({type(exc).__name__}: {exc})")
    for label, per_point in others:
        print(f"  {label:52s} {per_point * 1e3:9.3f} ms/pt  = {per_point / ours:8.0f} x sweeper's overhead")
    session.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
