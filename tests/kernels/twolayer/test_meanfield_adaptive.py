"""The `meanfield` kernel's adaptive integrator against Euler at dt -> 0 (Richardson), and the
rule that makes it the default: Dormand-Prince for the deterministic flow, Euler-Maruyama at
``dt`` whenever ``temperature > 0`` (docs/meanfield.md §3.1).

As for the `ode` kernel (tests/kernels/twolayer/test_ode_adaptive.py): Euler's error is
c1 dt + c2 dt^2, so ``R(dt/2) = 2 E(dt/4) - E(dt/2)`` is off by about ``|R(dt) - R(dt/2)| / 3``
(measured a third on every method here), and the adaptive flow at ``rtol = 1e-10`` must sit
within half of that, while Euler at dt/4 is ~100x farther.
"""

import numpy as np
import pytest

from kernels.registry import get_kernel

KERNEL = get_kernel("meanfield")()


def risk(**values):
    result = KERNEL.run(KERNEL.make_params(**values), seed=1)
    assert result.ok, result.message
    return result.outputs["risk"]


@pytest.mark.parametrize("method", ["reduced", "reduced_dinf", "particles"])
@pytest.mark.parametrize("train_second_layer", [False, True])
def test_adaptive_matches_euler_richardson(method, train_second_layer):
    common = dict(
        d=30, K=40 if method != "reduced" else 12, M=2, committee="mean", lr=0.5, lr_v=0.3 / 40**2,
        train_second_layer=train_second_layer, weight_decay=0.05, t_max=20.0, n_times=11,
        time_unit="flow", method=method, histograms=False,
    )  # fmt: skip
    euler = [risk(integrator="euler", dt=dt, **common) for dt in (0.04, 0.02, 0.01)]
    adaptive = risk(integrator="adaptive", rtol=1e-10, atol=1e-12, **common)
    r1, r2 = 2 * euler[1] - euler[0], 2 * euler[2] - euler[1]
    assert np.abs(adaptive - r2).max() <= 0.5 * np.abs(r1 - r2).max() + 1e-12
    assert np.abs(adaptive - r2).max() < 0.02 * np.abs(euler[2] - adaptive).max()


SMALL = dict(d=10, K=30, M=2, t_max=2.0, n_times=3, time_unit="flow", histograms=False)


@pytest.mark.parametrize("method", ["particles", "reduced", "reduced_dinf"])
def test_the_default_is_adaptive_without_noise(method):
    assert KERNEL.make_params().integrator == "adaptive"
    default = risk(method=method, **SMALL)
    np.testing.assert_array_equal(default, risk(method=method, integrator="adaptive", **SMALL))
    # Euler at the default dt = 0.05 is O(dt) ~ 1e-3 away: the default really is another scheme
    assert np.abs(default / risk(method=method, integrator="euler", **SMALL) - 1).max() > 1e-4


@pytest.mark.parametrize("method", ["particles", "reduced", "reduced_dinf"])
def test_langevin_noise_takes_euler_maruyama_under_either_integrator(method):
    """A Langevin grid written for `meanfield` 1 (no `integrator`) runs unchanged: with
    temperature > 0 the default gives Euler-Maruyama's numbers bit for bit, and the stored
    value stays the one the grid set (never rewritten: the store records the first point's)."""
    noisy = dict(SMALL, temperature=0.05, weight_decay=0.1, dt=0.05)
    assert KERNEL.make_params(**noisy).integrator == "adaptive"
    np.testing.assert_array_equal(
        risk(method=method, **noisy), risk(method=method, integrator="euler", **noisy)
    )


def test_langevin_noise_keeps_the_stiffness_guard_of_euler():
    """Euler-Maruyama is explicit: the guard on dt * weight_decay applies under the default too."""
    result = KERNEL.run(KERNEL.make_params(**SMALL, temperature=0.05, weight_decay=20.0, dt=0.05), seed=0)
    assert not result.ok and "explicit Euler is unstable: dt * weight_decay" in result.message


def test_adaptive_max_steps_is_a_failed_point():
    result = KERNEL.run(
        KERNEL.make_params(
            d=10,
            K=20,
            M=2,
            t_max=5.0,
            n_times=3,
            time_unit="flow",
            integrator="adaptive",
            max_steps=3,
            histograms=False,
        ),  # fmt: skip
        seed=0,
    )
    assert not result.ok and "max_steps=3" in result.message
    assert np.isfinite(result.outputs["risk"][0]) and np.isnan(result.outputs["risk"][-1])
