"""Adaptive refinement: the points each shipped refinement computes against the dense grid of
the same finest resolution, its wall time, and the workers' idle fraction.

Run: python bench/refine.py [--all] [--workers 2]

One private Ray (its start-up printed apart) runs, each into a fresh store in a temp folder:

- the analytic boundaries of the test kernel `boundary` (tests/sweeper/boundary.py): x < 1 on
  [0, 2] (1-D, 9 coarse values, 6 levels; the issue's goal: at most 15 % of the dense grid) and
  the unit circle on [-1.5, 1.5]^2 (2-D, 7 x 7 coarse, 5 levels; goal at most 25 %);
- experiments/ode_lr_threshold_K{1,2,3}.toml (1-D, 8 levels);
- experiments/phase_retrieval_sample_complexity.toml (1-D in alpha per (case, d), sequential
  seeds up to 32): by default only its d = 100 slice (a few minutes on 2 busy cores), with
  `--all` the whole grid (d = 100, 200, 400).

Per grid: points computed / points of the dense finest grid (seeds included), the wall time of
the sweep (Ray already up, workers warm after the first grid), and the fraction of the time the
workers were ready but held no block (measured by the dispatch; docs/refinement.md §3).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kernels.registry import register  # noqa: E402
from tests.sweeper import boundary  # noqa: E402

register(boundary.Boundary)

LINE = """kernel = "boundary"
name = "line"
[sweep]
x = {linspace = [0.0, 2.0, 9]}
[refine]
axes = ["x"]
levels = 6
output = "margin"
below = 0.0
"""
CIRCLE = """kernel = "boundary"
name = "circle"
[sweep]
x = {linspace = [-1.5, 1.5, 7]}
y = {linspace = [-1.5, 1.5, 7]}
[refine]
axes = ["x", "y"]
levels = 5
output = "margin"
below = 0.0
"""


def grids(everything: bool) -> list[tuple[str, str]]:
    out = [("boundary 1-D (x < 1)", LINE), ("boundary 2-D (unit circle)", CIRCLE)]
    for k in (1, 2, 3):
        out.append(
            (f"ode lr threshold K = {k}", (ROOT / f"experiments/ode_lr_threshold_K{k}.toml").read_text())
        )
    text = (ROOT / "experiments/phase_retrieval_sample_complexity.toml").read_text()
    if not everything:
        text = re.sub(r"^d = \[.*?\]", "d = [100]", text, flags=re.M)
    out.append((f"phase retrieval ({'d = 100, 200, 400' if everything else 'd = 100 only'})", text))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--all", action="store_true", help="the whole phase-retrieval grid (d = 100, 200, 400)"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import ray

    from sweeper import api
    from sweeper.blocks import OK
    from sweeper.grid_file import parse_spec
    from sweeper.store import Store

    folder = Path(tempfile.mkdtemp(prefix="bench-refine-"))
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=args.workers,
        _temp_dir=str(folder / "ray"),
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=256 * 1024**2,
    )
    ray.cloudpickle.register_pickle_by_value(boundary)
    print(
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"Ray up in {time.perf_counter() - start:.1f} s"
    )
    print(f"{'grid':36s} {'computed':>9s} {'dense':>8s} {'share':>7s} {'wall':>8s} {'idle':>6s}")
    try:
        for name, text in grids(args.all):
            spec = parse_spec(text).with_options(
                store=str(folder / f"{abs(hash(name))}.zarr"), workers=args.workers
            )
            began = time.perf_counter()
            _, summary = api.sweep(spec, progress=False)
            wall = time.perf_counter() - began
            computed = int((Store.open(spec.options.store, mode="r").status() == OK).sum())
            idle = "-" if summary.idle_fraction is None else f"{100 * summary.idle_fraction:.0f} %"
            print(
                f"{name:36s} {computed:9d} {spec.n_points:8d} {100 * computed / spec.n_points:6.2f}% "
                f"{wall:7.1f}s {idle:>6s}",
                flush=True,
            )
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
