"""Growth: what adding one value to an axis of a finished store costs (a copy into the new layout).

Run: python bench/growth.py [--points 5] [--n-times 2]

A finished store of 10^N points (`ode`, only `risk` stored, `--n-times` saved times;
lr x noise x 10 seeds) is filled by writing every block as the sweep would (synthetic
numbers: nothing is computed), then grown by one `lr` value inserted in the middle
(every block moves: the new layout reuses each point by its coordinates) and, on a
fresh copy, by one appended at the end. Prints the store's size and blocks, and the
seconds `Store.open_for` takes to grow it (damage check, copy beside the store, swap),
with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

GRID = """kernel = "ode"
name = "growth"
seeds = 10
[params]
K = 1
M = 1
n_times = {n_times}
t_max = 1.0
[sweep]
lr = {lr}
noise = {{linspace = [0.0, 1.0, {n_noise}]}}
[run]
outputs = ["risk"]
store = "{store}"
"""


def spec_for(store: Path, lr: list[float], n_noise: int, n_times: int):
    from sweeper.grid_file import parse_spec

    return parse_spec(GRID.format(lr=lr, n_noise=n_noise, n_times=n_times, store=store))


def fill(spec) -> None:
    """Every block written as a sweep writes it: outputs, record, status (all ok)."""
    from sweeper import api, scheduler
    from sweeper.blocks import OK, BlockResult

    spec, template = api.prepare(spec)
    store = api.open_store(spec, template, overwrite=True)
    rng = np.random.default_rng(0)
    todo = scheduler.plan(store)
    store.will_write(todo.todo)
    for flat in todo.todo.tolist():
        indices = todo.points(flat)
        n = len(indices)
        extra = template.output_shape("risk")
        store.write(
            BlockResult(
                store.layout.block_id(flat),
                indices,
                {"risk": rng.random((n, *extra))},
                np.full(n, OK, np.int8),
                [""] * n,
                rng.random(n),
            )
        )
    store.flush()


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def grow(base: Path, where: Path, spec) -> float:
    from sweeper import api
    from sweeper.store import Store

    shutil.copytree(base, where)
    spec = spec.with_options(store=str(where))
    spec, template = api.prepare(spec)
    start = time.perf_counter()
    store = Store.open_for(where, spec, template=template)
    seconds = time.perf_counter() - start
    assert store.counts()["ok"] == np.prod(store.layout.shape) - np.prod(store.layout.shape) // len(
        spec.axes[0].values
    ), store.counts()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=5, help="10^N points (N = 4, 5 or 6)")
    parser.add_argument("--n-times", type=int, default=2)
    args = parser.parse_args()
    n_lr = 10 ** (args.points - 3)
    n_noise = 100
    lr = [round(0.1 + 0.01 * k, 4) for k in range(n_lr)]
    tmp = Path(tempfile.mkdtemp(prefix="sweeper-growth-"))
    try:
        small = spec_for(tmp / "base.zarr", lr, n_noise, args.n_times)
        start = time.perf_counter()
        fill(small)
        filled = time.perf_counter() - start
        from sweeper.store import Store

        layout = Store.open(tmp / "base.zarr", mode="r").layout
        print(
            f"store     {small.n_points} points, {layout.n_blocks} blocks of {np.prod(layout.chunks)}, "
            f"{du(tmp / 'base.zarr') / 2**20:.1f} MiB on disk (written block by block in {filled:.1f} s)"
        )
        middle = lr[: n_lr // 2] + [lr[n_lr // 2 - 1] + 0.005] + lr[n_lr // 2 :]
        for label, values in (("middle", middle), ("end", lr + [lr[-1] + 0.01])):
            grown = spec_for(tmp / f"{label}.zarr", values, n_noise, args.n_times)
            seconds = grow(tmp / "base.zarr", tmp / f"{label}.zarr", grown)
            print(
                f"grow      lr {n_lr} -> {n_lr + 1} values ({label}): {seconds:.2f} s "
                f"({grown.n_points} points, {grown.n_points - small.n_points} new)"
            )
        print(f"load      {os.getloadavg()[0]:.1f} (1-minute average, {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
