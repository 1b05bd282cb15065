"""Cost of the integrity records: the driver's write path with and without them, and the checks.

Run: python bench/integrity.py [BLOCKS]   (from the repository root; default 10^4 blocks)

Prints, on this machine, with the test kernel `relaxation` (3 outputs, blocks of 8 points):
1. milliseconds per block write, wall and CPU, with records and without (the same results
   written to two fresh stores, alternating, median of 7 rounds of 300 blocks);
2. for a finished store of BLOCKS blocks: reading `status` through zarr (what every resume
   already does), the cheap check (`checks.check`: status, records, one stat per chunk),
   the check every resubmit runs (`full=None`) and the full check behind `sweeper verify`
   (every recorded chunk read and its CRC-32 compared).
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

from kernels.registry import register
from sweeper import api, checks, scheduler
from sweeper.grid_file import parse_spec
from tests.sweeper import relaxation

register(relaxation.Relaxation)

GRID = """
kernel = "relaxation"
name = "bench"
seeds = 8
[params]
n_times = 20
noise = 0.1
[sweep]
rate = {{linspace = [0.1, 2, {n_rate}]}}
x0 = [0.5, 1.0]
[run]
block_size = 8
workers = 0
"""


def fresh(where: Path, n_rate: int, records: bool = True):
    spec = parse_spec(GRID.format(n_rate=n_rate)).with_options(store=str(where))
    spec, template = api.prepare(spec)
    store = api.open_store(spec, template, overwrite=True)
    if not records:
        store.records = None  # as before records existed
        store._arrays = {}
    return spec, store


def results_for(spec, store):
    runner = api.InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs).runner
    return [runner.run(task) for task in scheduler.tasks(spec, store)]


def per_block(store, results) -> tuple[float, float]:
    """Wall and CPU (all the driver's threads: zarr encodes in its own) ms per block write."""
    wall, cpu = time.perf_counter(), time.process_time()
    for result in results:
        store.write(result)
    n = len(results)
    return (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3


def best_of(f, n=3) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main(n_blocks: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sweeper-bench-integrity-"))
    spec, store = fresh(tmp / "w.zarr", 150)
    results = results_for(spec, store)
    with_records, without = [], []
    for _ in range(7):
        with_records.append(per_block(fresh(tmp / "on.zarr", 150)[1], results))
        without.append(per_block(fresh(tmp / "off.zarr", 150, records=False)[1], results))
    for i, what in enumerate(("wall", "CPU")):
        on = statistics.median(t[i] for t in with_records)
        off = statistics.median(t[i] for t in without)
        print(f"write path   {what}: {off:.2f} ms/block without records, {on:.2f} with ({on - off:+.2f} ms)")

    spec, store = fresh(tmp / "big.zarr", n_blocks // 2)
    for result in results_for(spec, store):
        store.write(result)
    n = store.layout.n_blocks
    print(f"store        {n} blocks, {spec.n_points} points, finished")
    print(f"status read  {best_of(store.status):.3f} s (every resume reads it anyway)")
    print(f"cheap check  {best_of(lambda: checks.check(store)):.3f} s (sizes against the records)")
    auto = checks.check(store, full=None)
    took = best_of(lambda: checks.check(store, full=None))
    print(f"at resubmit  {took:.3f} s ({'every byte' if auto.full else 'sizes'}: full=None)")
    print(f"full check   {best_of(lambda: checks.check(store, full=True), n=1):.3f} s (sweeper verify)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
