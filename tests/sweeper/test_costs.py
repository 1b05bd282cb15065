"""What points cost: the weighted ETA as pure functions, the plan's pilot surgery, and the
progress bar's class. No Ray, no clock."""

import sys
import types
import warnings

import numpy as np
import pytest

from sweeper import costs, progress
from sweeper.layout import Layout, chunk_shape
from sweeper.scheduler import Plan


def grid_costs(shape, cost_of):
    """Every point's indices and cost, for a grid whose cost is ``cost_of(index)``."""
    indices = np.argwhere(np.ones(shape, dtype=bool))
    return indices, np.array([cost_of(tuple(i)) for i in indices], dtype=float)


def test_the_expensive_axis_weights_the_remaining_points():
    # t_max-like axis 0 (3 values: 1 s, 10 s, 100 s a point) x 4 seeds; the first two values done.
    indices, walls = grid_costs((3, 4), lambda i: 10.0 ** i[0] * (1 + 0.01 * i[1]))
    done = indices[:, 0] < 2
    remaining = costs.per_axis(~done.reshape(3, 4))
    estimate = costs.remaining_cost(indices[done], walls[done], remaining)
    # The last value was never seen: its nearest seen value (10 s) is charged, not the
    # overall median (5.5 s): 4 points x 10.15 s (the median of 10, 10.1, 10.2 and 10.3).
    assert estimate == pytest.approx(4 * 10.15)
    # A flat rate (points per second) would say 4 x the overall median.
    assert estimate > 4 * np.median(walls[done]) * 1.5


def test_with_every_value_seen_each_remaining_point_costs_its_value_median():
    indices, walls = grid_costs((2, 3), lambda i: [1.0, 5.0][i[0]])
    seen = np.array([True, False, False, True, False, False])  # one point of each value of axis 0
    remaining = costs.per_axis(~seen.reshape(2, 3))
    assert costs.remaining_cost(indices[seen], walls[seen], remaining) == pytest.approx(2 * 1.0 + 2 * 5.0)


def test_no_axis_seen_twice_falls_back_to_the_overall_median():
    remaining = [np.array([0, 5]), np.array([2, 3])]
    assert costs.remaining_cost(np.array([[0, 0]]), np.array([2.0]), remaining) == pytest.approx(10.0)
    assert costs.remaining_cost(np.zeros((0, 2), int), np.zeros(0), remaining) is None  # nothing known
    assert costs.remaining_cost(np.array([[0, 0]]), np.array([2.0]), [np.zeros(2), np.zeros(2)]) == 0.0


def test_nan_costs_are_ignored_and_medians_are_per_value():
    medians = costs.value_medians(np.array([0, 0, 0, 2]), np.array([3.0, 1.0, 2.0, 7.0]), 4)
    np.testing.assert_array_equal(medians, [2.0, np.nan, 7.0, np.nan])
    np.testing.assert_array_equal(costs.fill_nearest(medians), [2.0, 2.0, 7.0, 7.0])
    est = costs.remaining_cost(np.array([[0], [1]]), np.array([np.nan, 4.0]), [np.array([0, 0, 3])])
    assert est == pytest.approx(12.0)


def test_throughput_leaves_out_the_first_moment_and_is_capped_by_the_workers():
    # Two workers: results at t = 10 (two blocks of 4 s each), 14 and 18; now = 18.
    finished = np.array([10.0, 10.0, 14.0, 18.0])
    walls = np.array([4.0, 4.0, 4.0, 4.0])
    assert costs.throughput(finished, walls, now=18.0) == pytest.approx(8.0 / 8.0)
    assert costs.throughput(finished[:2], walls[:2], now=10.0) is None  # one moment only
    assert costs.throughput(np.array([0.0, 0.1]), np.array([5.0, 5.0]), 0.1, at_most=2) == 2
    assert costs.time_left(30.0, 1.5) == pytest.approx(20.0)
    assert costs.time_left(None, 1.5) is None and costs.time_left(3.0, None) is None


def test_plan_mask_only_and_without_round_trip():
    layout = Layout((5, 3, 4), chunk_shape((5, 3, 4), 5))
    want = np.random.default_rng(0).random(layout.shape) < 0.4
    plan = Plan.from_mask(layout, want)
    assert plan.n_todo == int(want.sum())
    np.testing.assert_array_equal(plan.mask(), want)
    ends = plan.ends()
    todo_points = np.argwhere(want)
    np.testing.assert_array_equal(ends, todo_points[[0, -1]])  # C order = the order blocks run in
    pilot = plan.only(ends)
    assert pilot.n_todo == 2
    np.testing.assert_array_equal(np.argwhere(pilot.mask()), ends)
    rest = plan.without(ends)
    assert rest.n_todo == plan.n_todo - 2
    assert not rest.mask()[tuple(ends.T)].any()
    got = np.concatenate([rest.points(int(f)) for f in rest.todo] + [ends])
    assert sorted(map(tuple, got)) == sorted(map(tuple, todo_points))


def test_format_seconds():
    assert [progress.format_seconds(s) for s in (None, 0.2234, 14.4, 185, 3723)] == [
        "?",
        "0.22 s",
        "14 s",
        "3:05",
        "1:02:03",
    ]


def fake_ipython(monkeypatch, shell_name):
    shell = type(shell_name, (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_progress_class_is_text_outside_jupyter_and_in_jupyter_without_ipywidgets(monkeypatch):
    from tqdm.std import tqdm as text

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert progress.progress_class() is text
    fake_ipython(monkeypatch, "TerminalInteractiveShell")  # plain IPython: a terminal
    assert progress.progress_class() is text
    fake_ipython(monkeypatch, "ZMQInteractiveShell")  # a Jupyter kernel
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    monkeypatch.delitem(sys.modules, "tqdm.notebook", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm.auto would warn "IProgress not found" here
        chosen = progress.progress_class()
        bar = chosen(total=3, disable=True)
        bar.update(3)
        bar.close()
    assert chosen is text


def test_progress_class_in_jupyter_with_ipywidgets_is_the_widget(monkeypatch):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as widget

    fake_ipython(monkeypatch, "ZMQInteractiveShell")
    assert progress.progress_class() is widget
