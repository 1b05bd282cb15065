"""A simulated multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

Actors spread over every node; a node removed without warning mid-sweep loses
nothing; a node that joins mid-sweep gets work.
"""

import tempfile

import pytest

from sweeper import api, scheduler
from sweeper.dispatch import Dispatch
from sweeper.executors import RayExecutor
from tests.integration.faults import (
    N_POINTS,
    WriteCounter,
    assert_same_results,
    computations,
    fault_spec,
    undisturbed,
)
from tests.integration.test_faults import report

NODE = {"num_cpus": 1, "object_store_memory": 128 * 1024**2}
pytestmark = pytest.mark.slow  # each test starts a multi-node cluster


@pytest.fixture
def cluster(monkeypatch, ray_with_test_kernel):
    """A one-CPU head node; tests add worker nodes. Torn down by the test.

    RAY_TMPDIR keeps every node's session, and the address file a bare `ray.init()`
    would follow, in a private dir: nobody else on the machine joins this cluster.
    """
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setenv("RAY_TMPDIR", tempfile.mkdtemp(prefix="sw-cluster-"))
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def sweep(spec, executor, hook):
    try:
        return scheduler.sweep(spec, api.open_store(spec, api.prepare(spec)[1]), executor, on_result=hook)
    finally:
        executor.close()


def test_node_removed_mid_sweep_loses_nothing(cluster, tmp_path):
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    reference = undisturbed(tmp_path)
    spec = fault_spec(tmp_path, "node", delay=0.1)
    executor = RayExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs, workers=3)
    executor.wait_ready()
    nodes = {cluster.head_node.node_id, *(w.node_id for w in workers)}
    writes = WriteCounter()

    def remove_a_node(result):
        writes(result)
        if writes.blocks == 2:
            assert {p["node"] for p in executor.placement.values()} == nodes, "actors not spread"
            cluster.remove_node(workers[0], allow_graceful=False)

    summary = sweep(spec, executor, remove_a_node)
    assert (summary.ok, summary.failed) == (N_POINTS, 0)
    writes.assert_each_point_written_once()
    assert_same_results(spec.options.store, reference)
    counts = computations(spec)
    recomputed = sum(counts.values()) - len(counts)
    assert recomputed <= 2 * spec.options.block_size  # the block running on the lost node, at most
    report("node removed", 1, 0, recomputed)


def test_node_joining_mid_sweep_gets_work(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(Dispatch, "GROWTH_PERIOD", 0.2)
    # 48 points of 0.2 s on one worker: ~10 s, long enough for a node started under load
    # (several seconds) and its warm actor to take a quarter of them
    spec = fault_spec(tmp_path, "join", delay=0.2)
    executor = RayExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs, workers=1, grow=True)
    joined = []

    def add_a_node(result):
        if not joined:
            joined.append(cluster.add_node(**NODE))
            cluster.wait_for_nodes()  # registered with the head: the pool's next growth check sees it

    summary = sweep(spec, executor, add_a_node)
    assert summary.ok == N_POINTS
    nodes = {p["node"] for p in executor.placement.values()}
    assert nodes == {cluster.head_node.node_id, joined[0].node_id}
    new_pid = next(p["pid"] for p in executor.placement.values() if p["node"] == joined[0].node_id)
    trace = (tmp_path / "join-trace" / "trace.log").read_text().split("\n")
    assert sum(line.startswith(f"{new_pid} ") for line in trace) >= N_POINTS // 4
