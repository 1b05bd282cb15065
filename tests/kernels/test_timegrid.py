"""The saved time grid of discrete-time kernels: the `time` coordinate is the time of the state.

A discrete process (`dmft` with step ``lr`` or ``dt``, multipass `sgd` with step ``lr``) can
only save at whole steps. :func:`kernels.timegrid.check_steps` refuses, at parameter
validation, a grid with a saved time more than ``STEP_RTOL`` (relative) off its step or two
saved times on one step; the coordinates are never moved onto the steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels.base import ParameterError
from kernels.singlelayer.dmft import DMFTKernel
from kernels.singlelayer.sgd_multipass import SGDMultipassKernel
from kernels.timegrid import STEP_RTOL, TimeGridParams, check_steps, save_steps, saved_times
from sweeper.errors import SpecError
from sweeper.grid_file import parse_spec

RIDGE = {"alpha": 3.0, "ridge": 0.5, "m0": 0.2, "q0": 1.04, "loss": "square", "teacher": "linear"}
SMALL_DMFT = {**RIDGE, "n_traj": 400, "n_blocks": 1}

LOG_BELOW_STEP = (
    r"^t_min: saved times must be whole steps of lr = 0\.1 \(within 0\.1% of t\), but t = 0\.01 is"
)
LOG_FIX = r"On a log grid use `t_min >= 50` \(500 steps"


def grid(**kw) -> TimeGridParams:
    return TimeGridParams(**kw)


# -- the rule --------------------------------------------------------------------------------------


def test_a_linear_grid_on_whole_steps_saves_exactly_there():
    g = grid(t_max=5.0, n_times=11)
    np.testing.assert_array_equal(save_steps(g, 0.1), np.arange(0, 51, 5))
    np.testing.assert_allclose(save_steps(g, 0.1) * 0.1, saved_times(g), rtol=1e-12, atol=0)


def test_a_spacing_off_the_steps_is_refused_with_a_working_n_times():
    g = grid(t_max=5.0, n_times=21)  # spacing 0.25 = 2.5 steps
    message = (
        r"^n_times: saved times must be whole steps of lr = 0\.1 \(within 0\.1% of t\), but t = 0\.25 is "
        r"2\.5 steps: its state would be the one at t = 0\.2\. The spacing t_max/\(n_times - 1\) = 0\.25 "
        r"must be a multiple of lr: e\.g\. `n_times = 26`\.$"
    )
    with pytest.raises(ParameterError, match=message):
        check_steps(g, 0.1)
    check_steps(grid(t_max=5.0, n_times=26), 0.1)  # the suggestion is accepted


def test_t_max_off_the_steps_is_named():
    with pytest.raises(
        ParameterError, match=r"and `t_max` \(5\.05, 50\.5 steps\) a whole number of steps\.$"
    ):
        check_steps(grid(t_max=5.05, n_times=21), 0.1)


def test_a_log_grid_below_the_step_is_refused_naming_t_min():
    g = grid(time_spacing="log", t_min=0.01, t_max=5.0, n_times=21)
    with pytest.raises(ParameterError, match=LOG_BELOW_STEP) as info:
        check_steps(g, 0.1)
    assert "its state would be the one at t = 0." in str(info.value)
    assert "`t_min >= 50` (500 steps: every saved time is then within 0.1% of its step)" in str(info.value)


def test_two_saved_times_on_one_step_are_refused():
    # t_min = 500 steps keeps every time within 0.1%, but 2000 times in a factor 2 share steps
    g = grid(time_spacing="log", t_min=50.0, t_max=100.0, n_times=2000)
    with pytest.raises(
        ParameterError, match=r"^t_min: saved times t = 50 and t = 50\.0173 fall on the same step"
    ):
        check_steps(g, 0.1)


def test_within_the_tolerance_a_time_is_its_nearest_step():
    # t = 50/3: 1666.67 steps of 0.01, saved at step 1667 (2e-4 of t late)
    g = grid(t_max=50.0, n_times=4)
    steps = save_steps(g, 0.01)
    np.testing.assert_array_equal(steps, [0, 1667, 3333, 5000])
    assert np.all(np.abs(steps * 0.01 - saved_times(g)) <= STEP_RTOL * saved_times(g))
    # the suggested log grid passes: t_min = 500 steps, consecutive times more than a step apart
    log = grid(time_spacing="log", t_min=50.0, t_max=1000.0, n_times=41)
    steps = save_steps(log, 0.1)
    assert np.all(np.diff(steps) > 0)
    assert np.all(np.abs(steps * 0.1 - saved_times(log)) <= STEP_RTOL * saved_times(log))


# -- the dmft kernel ---------------------------------------------------------------------------------


def test_dmft_refuses_a_log_grid_below_lr_at_validation():
    with pytest.raises(ParameterError, match=LOG_BELOW_STEP + r".*" + LOG_FIX):
        DMFTKernel.make_params(**RIDGE, lr=0.1, time_spacing="log", t_min=0.01, t_max=5.0, n_times=21)


def test_dmft_flow_limit_checks_against_dt():
    with pytest.raises(ParameterError, match=r"^n_times: saved times must be whole steps of dt = 0\.03 "):
        DMFTKernel.make_params(**RIDGE, dt=0.03, t_max=3.0, n_times=16)  # spacing 0.2 = 6.67 steps
    DMFTKernel.make_params(**RIDGE, dt=0.02, t_max=3.0, n_times=16, lr=0.3)  # lr is not the step here


def test_dmft_saves_the_state_at_its_time():
    # the saved grid only selects steps: a coarse grid is the fine one at those times
    fine = DMFTKernel().run(DMFTKernel.make_params(**SMALL_DMFT, lr=0.1, t_max=2.0, n_times=21), seed=3)
    coarse = DMFTKernel().run(DMFTKernel.make_params(**SMALL_DMFT, lr=0.1, t_max=2.0, n_times=5), seed=3)
    assert fine.ok and coarse.ok
    for name in ("m", "Q", "train_loss"):
        np.testing.assert_array_equal(coarse.outputs[name], fine.outputs[name][::5], err_msg=name)


def test_a_bad_time_grid_fails_when_the_grid_file_is_read():
    text = """
kernel = "dmft"
[params]
lr = 0.1
t_max = 5.0
n_times = 21
time_spacing = "log"
t_min = 0.01
[sweep]
alpha = [1.5, 3.0]
"""
    with pytest.raises(
        SpecError, match=r"^<string>: params: t_min: saved times must be whole steps of lr = 0\.1"
    ):
        parse_spec(text)
    # a swept step is checked value by value
    text = 'kernel = "dmft"\n[params]\nt_max = 3.0\nn_times = 11\n[sweep]\nlr = [0.1, 0.3, 0.25]\n'
    with pytest.raises(
        SpecError, match=r"^<string>: sweep\.lr\[2\]: n_times: saved times must be whole steps"
    ):
        parse_spec(text)


# -- pairs ---------------------------------------------------------------------------------------------


def test_paired_kernels_share_coordinates_and_steps():
    # dmft and multipass sgd with the same parameters: the same `time` coordinate, saved at the
    # same steps; coordinates depend on the grid only, never on the step
    values = dict(RIDGE, lr=0.1, t_max=5.0, n_times=11)
    theory = DMFTKernel.make_params(**values)
    simulation = SGDMultipassKernel.make_params(d=100, **values)
    np.testing.assert_array_equal(
        DMFTKernel().schema(theory).coords["time"], SGDMultipassKernel().schema(simulation).coords["time"]
    )
    np.testing.assert_array_equal(save_steps(theory, theory.step), save_steps(simulation, 0.1))
    flow = DMFTKernel.make_params(**{**values, "dt": 0.05})
    np.testing.assert_array_equal(
        DMFTKernel().schema(flow).coords["time"], DMFTKernel().schema(theory).coords["time"]
    )
