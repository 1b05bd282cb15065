"""A point made of independent parts (sweeper.parts): one task per part, combined when the last arrives.

The test kernel ``replicas`` averages independent noisy relaxations (its parts); ``dmft``
declares its blocks of trajectories as parts. Whatever order the parts come back in, and
however the dispatch splits a part's task on a retry, a point is written once, whole, with
the numbers of ``Kernel.run``; a failed part fails its point alone.
"""

import itertools

import numpy as np
import pytest
import xarray as xr

from kernels.registry import get_kernel
from sweeper import api, execution, scheduler
from sweeper.blocks import FAILED, OK, failed_block, single
from sweeper.executors import InProcessExecutor
from sweeper.grid_file import parse_spec
from sweeper.parts import Parts

GRID = """
kernel = "replicas"
name = "parts"
seeds = 2
[params]
t_max = 2.0
n_times = 5
noise = 0.5
[sweep]
replicas = [1, 3, 2]
rate = [0.5, 1.0]
[run]
block_size = 4
store = "{store}"
"""


def whole_points(spec):
    """Each point of ``spec`` by ``Kernel.run``, as {grid index: Result}."""
    kernel = spec.kernel_class()()
    out = {}
    for index in itertools.product(*map(range, spec.shape)):
        swept, seed = spec.point(index)
        out[index] = kernel.run(kernel.make_params(**spec.fixed, **swept), seed)
    return out


def assert_store_is_whole_points(path, spec):
    ds = xr.open_zarr(path)
    for index, result in whole_points(spec).items():
        assert int(ds.status.values[index]) == (OK if result.ok else FAILED), index
        assert str(ds.message.values[index]) == result.message
        for name, value in result.outputs.items():
            np.testing.assert_array_equal(ds[name].values[index], value)


def test_a_sweep_of_points_with_parts_stores_the_whole_points(tmp_path):
    spec = parse_spec(GRID.format(store=tmp_path / "parts.zarr")).with_options(workers=0)
    _, summary = api.sweep(spec, progress=False)
    assert (summary.ok, summary.failed) == (12, 0)
    assert_store_is_whole_points(spec.options.store, spec)
    wall = xr.open_zarr(spec.options.store).wall_time.values
    assert np.all(wall > 0)  # the point's cost: its parts' seconds summed


def test_dmft_blocks_as_parts_give_the_numbers_of_one_run(tmp_path):
    text = """
kernel = "dmft"
name = "dmft_parts"
seeds = 2
[params]
alpha = 2.0
loss = "logcosh"
moment_matching = false
ridge = 0.1
lr = 0.2
t_max = 1.0
n_times = 6
n_traj = 300
[sweep]
n_blocks = [1, 3]
[run]
store = "{store}"
"""
    spec = parse_spec(text.format(store=tmp_path / "dmft.zarr")).with_options(workers=0)
    api.sweep(spec, progress=False)
    assert_store_is_whole_points(spec.options.store, spec)
    errors = xr.open_zarr(spec.options.store).m_mc_error.values
    assert np.all(errors[0] == 0) and np.all(errors[1] > 0)  # 1 block knows no error; 3 blocks do


def split_and_run(spec):
    """The part tasks of ``spec``'s points and each one's result from a worker."""
    parts = Parts(spec.kernel_class(), spec.fixed, spec.options.outputs)
    runner = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs).runner
    tasks = [t for t in parts.split(scheduler.tasks(spec, api.open_store(spec, api.prepare(spec)[1])))]
    return parts, tasks, [runner.run(task) for task in tasks]


def test_a_point_is_handed_on_once_its_last_part_arrives_in_any_order(tmp_path):
    spec = parse_spec(GRID.format(store=tmp_path / "order.zarr")).with_options(block_size=12)
    parts, tasks, results = split_and_run(spec)
    # one block of 12 points, cut into as many tasks as its most parts: replicas 1, 3, 2 at
    # 2 rates x 2 seeds, so part 1 has the points of 3 and 2 replicas, part 2 those of 3
    assert [t.part for t in tasks] == [0, 1, 2]
    assert [len(t.swept) for t in tasks] == [12, 8, 4]
    whole = whole_points(spec)
    handed = list(parts.assemble(reversed(results)))  # the last part of every point first
    points = [tuple(i) for r in handed for i in r.indices]
    assert sorted(points) == sorted(whole) and len(points) == len(set(points))
    for result in handed:
        for k, index in enumerate(result.indices):
            expected = whole[tuple(index)]
            assert result.status[k] == OK
            for name, value in expected.outputs.items():
                np.testing.assert_array_equal(result.outputs[name][k], value)
    assert not parts.waiting  # nothing left behind


def test_a_part_retried_point_by_point_still_completes_its_points(tmp_path):
    spec = parse_spec(GRID.format(store=tmp_path / "retry.zarr"))
    parts, tasks, results = split_and_run(spec)
    runner = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs).runner
    # The dispatch gave up on the first task whole and ran its points one by one (a dead worker)
    singles = [runner.run(single(tasks[1], k, attempt=3)) for k in range(len(tasks[1].swept))]
    handed = list(parts.assemble([results[0], *singles, *results[2:]]))
    assert sum(len(r.indices) for r in handed) == 12
    assert all((r.status == OK).all() for r in handed)


def test_a_failed_part_fails_its_point_alone_with_its_message(tmp_path):
    text = GRID.replace("noise = 0.5", "noise = 0.5\nfail_part = 2")
    spec = parse_spec(text.format(store=tmp_path / "fail.zarr")).with_options(workers=0)
    _, summary = api.sweep(spec, progress=False)
    assert (summary.ok, summary.failed) == (8, 4)  # the points of 3 replicas
    ds = xr.open_zarr(spec.options.store)
    assert (ds.status.sel(replicas=3) == FAILED).all() and (ds.status.sel(replicas=[1, 2]) == OK).all()
    assert str(ds.message.sel(replicas=3).values[0, 0]) == "replica 2 diverged"
    assert_store_is_whole_points(spec.options.store, spec)
    # A part whose worker died for good fails its point with the dispatch's message
    parts, tasks, results = split_and_run(spec.with_options(store=str(tmp_path / "dead.zarr"), block_size=12))
    dead = failed_block(tasks[1], "worker died 3 times running this point: RayActorError")
    handed = list(parts.assemble([results[0], dead, *results[2:]]))
    messages = {tuple(i): (s, m) for r in handed for i, s, m in zip(r.indices, r.status, r.messages)}
    for index in tasks[1].indices:
        assert messages[tuple(index)] == (FAILED, "worker died 3 times running this point: RayActorError")


class StopAfter:
    """An executor that is interrupted (Ctrl-C) after ``n`` part results."""

    def __init__(self, executor, n):
        self.executor, self.n = executor, n

    def map(self, tasks):
        for k, result in enumerate(self.executor.map(tasks)):
            if k == self.n:
                raise KeyboardInterrupt
            yield result


def test_an_interrupted_submission_stores_no_half_point_and_resumes(tmp_path):
    spec, template = api.prepare(parse_spec(GRID.format(store=tmp_path / "stop.zarr")))
    store = api.open_store(spec, template)
    here = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs)
    with pytest.raises(KeyboardInterrupt):
        # parts 0 | 0, 1, 2 | 0, 1 of its three blocks: stopped with the last block half done
        scheduler.sweep(spec, store, StopAfter(here, 5))
    status = xr.open_zarr(spec.options.store).status.values
    assert (status == OK).sum() == 8 and (status[2] == 0).all()  # replicas = 2: still pending
    summary = scheduler.sweep(spec, api.open_store(spec, template), here)
    assert (summary.computed, summary.skipped) == (4, 8)
    assert_store_is_whole_points(spec.options.store, spec)


def test_kernels_without_parts_are_not_split():
    assert not Parts.declared(get_kernel("relaxation")) and Parts.declared(get_kernel("dmft"))


def parts_computed(folder) -> int:
    return len((folder / "trace.log").read_text().splitlines())


def test_a_small_grid_with_parts_runs_here_after_a_one_part_pilot_that_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(execution, "connect_ray", lambda *a, **k: pytest.fail("Ray was started"))
    text = GRID.replace("noise = 0.5", f'noise = 0.5\ntrace_dir = "{tmp_path}"')
    spec = parse_spec(text.format(store=tmp_path / "small.zarr"))
    assert execution.in_process_first(spec, None, None)
    _, summary = api.sweep(spec, progress=False)
    assert (summary.computed, summary.ok, summary.skipped) == (12, 12, 0)
    assert summary.note.startswith("in this process: about ")
    assert parts_computed(tmp_path) == 4 * (1 + 3 + 2)  # every part once: the pilot's is not redone
    assert_store_is_whole_points(spec.options.store, spec)


def test_one_expensive_point_goes_to_ray_after_its_first_part(tmp_path, monkeypatch):
    """A one-point grid: the pilot computes part 0 here, the other parts go to Ray (a stand-in)."""
    text = GRID.replace("noise = 0.5", f'noise = 0.5\ntrace_dir = "{tmp_path}"\ndelay = 0.3')
    text = text.replace("seeds = 2", "seeds = 1").replace("replicas = [1, 3, 2]", "replicas = [4]")
    spec = parse_spec(text.replace("rate = [0.5, 1.0]", "rate = [0.5]").format(store=tmp_path / "one.zarr"))
    monkeypatch.setattr(execution, "IN_PROCESS_BELOW", 0.5)  # 3 more parts of 0.3 s: 0.9 s
    sent = []

    def start_ray(run):
        here = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs)
        real_map = here.map
        here.map = lambda tasks: real_map(sent.append(t.part) or t for t in tasks)
        run.executors.append(here)
        return here

    monkeypatch.setattr(execution.Execution, "start_ray", start_ray)
    _, summary = api.sweep(spec, progress=False)
    assert (summary.computed, summary.ok) == (1, 1) and summary.note == ""
    assert sent == [1, 2, 3] and parts_computed(tmp_path) == 4
    assert_store_is_whole_points(spec.options.store, spec)
