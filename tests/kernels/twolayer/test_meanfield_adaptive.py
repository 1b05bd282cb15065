"""The `meanfield` kernel's adaptive integrator against Euler at dt -> 0 (Richardson).

As for the `ode` kernel (tests/kernels/twolayer/test_ode_adaptive.py): Euler's error is
c1 dt + c2 dt^2, so ``R(dt/2) = 2 E(dt/4) - E(dt/2)`` is off by about ``|R(dt) - R(dt/2)| / 3``
(measured a third on every method here), and the adaptive flow at ``rtol = 1e-10`` must sit
within half of that, while Euler at dt/4 is ~100x farther.
"""

import numpy as np
import pytest

from kernels.base import ParameterError
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
    euler = [risk(dt=dt, **common) for dt in (0.04, 0.02, 0.01)]
    adaptive = risk(integrator="adaptive", rtol=1e-10, atol=1e-12, **common)
    r1, r2 = 2 * euler[1] - euler[0], 2 * euler[2] - euler[1]
    assert np.abs(adaptive - r2).max() <= 0.5 * np.abs(r1 - r2).max() + 1e-12
    assert np.abs(adaptive - r2).max() < 0.02 * np.abs(euler[2] - adaptive).max()


def test_adaptive_refuses_langevin_noise():
    with pytest.raises(ParameterError, match='integrator: "adaptive" integrates the deterministic flow'):
        KERNEL.make_params(integrator="adaptive", temperature=0.1)


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
