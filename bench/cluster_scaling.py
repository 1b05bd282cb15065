"""Throughput and the driver's CPU share on a simulated cluster of 1, 2 and 4 nodes.

Run: python bench/cluster_scaling.py

Each node is a real raylet with one CPU (``ray.cluster_utils.Cluster``) on this
machine; the actors spread over the nodes and the driver (scheduler plus the one
zarr writer) runs here. For each cluster size it prints points/s end to end
(zarr writes included) and the driver's CPU time over the wall time, for trivial
points (the driver's worst case: all overhead) and for 1 ms points, the driver's
CPU per block, and what that makes at 10^4 points/s. Goal: the driver is not the
bottleneck, i.e. under 25 % of one core at 10^4 points/s. Its cost is per block
(one zarr write of each variable, one actor call), so it falls with the block size.

This machine has 2 cores, so 4 one-CPU nodes share 2 cores: throughput cannot
scale past 2 nodes here; the driver's share per point is what carries over.
"""

import os
import shutil
import tempfile
import time

import engine_overhead  # registers the bench_trivial kernel
import ray
from engine_overhead import grid
from ray.cluster_utils import Cluster

from sweeper import api, scheduler
from sweeper.executors import RayExecutor

ray.cloudpickle.register_pickle_by_value(engine_overhead)
NODE = {"num_cpus": 1, "object_store_memory": 128 * 1024**2}


def measure(spec) -> tuple[float, float]:
    """(points/s, driver CPU seconds per wall second) of one sweep, actors warm."""
    spec, template = api.prepare(spec)
    store = api.open_store(spec, template, overwrite=True)
    options = spec.options
    executor = RayExecutor(spec.kernel_class(), spec.fixed, options.outputs, workers=options.workers)
    executor.wait_ready()
    cpu, start = time.process_time(), time.perf_counter()
    summary = scheduler.sweep(spec, store, executor)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    executor.close()
    assert summary.ok == spec.n_points, summary
    return spec.n_points / wall, cpu / wall


def main() -> None:
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="sw-bench-")  # a private cluster
    tmp = tempfile.mkdtemp(prefix="bench-cluster-")
    print(
        f"{'nodes':>5s} {'points':>8s} {'work':>6s} {'block':>6s} {'points/s':>10s} {'driver CPU':>11s} "
        f"{'CPU/block':>10s} {'CPU at 1e4 pt/s':>16s}"
    )
    for nodes in (1, 2, 4):
        cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        for _ in range(nodes - 1):
            cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        for work_ms, n_x, block in ((0.0, 400, 1000), (0.0, 400, 256), (1.0, 40, 50)):
            spec = grid(n_x, 500, work_ms, block, nodes, f"{tmp}/n{nodes}-{work_ms}-{block}.zarr")
            rate, share = measure(spec)
            per_point = share / rate  # driver CPU seconds per point
            print(
                f"{nodes:5d} {spec.n_points:8d} {work_ms:4.0f}ms {block:6d} {rate:10.0f} {share:10.1%} "
                f"{per_point * block * 1e3:8.2f}ms "
                + (f"{per_point * 1e4:15.1%}" if work_ms == 0 else f"{'-':>15s}")
            )
        ray.shutdown()
        cluster.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
