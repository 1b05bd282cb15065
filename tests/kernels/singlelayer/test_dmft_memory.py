"""Memory truncation of the `dmft` kernel (`memory_lag`, docs/dmft.md §4.6)."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.base import ParameterError
from tests.kernels.singlelayer.test_dmft import RIDGE, run_dmft

PHASE_PSGD = dict(
    alpha=3.0,
    teacher="abs",
    loss="phase",
    loss_scale=0.25,
    spherical="projection",
    q0=1.0,
    m0=0.2,
    algorithm="psgd",
    b=0.5,
    tau=1.0,
    lr=0.05,
    dt=0.05,
    integrator="semi-implicit",
)


def test_truncated_memory_keeps_the_window_and_zeroes_the_rest():
    """Ridge GD: s_hat l'' = 1 on every trajectory, so M_R does not depend on the process and
    its entries within the lag are those of the whole memory to round-off; beyond it they are 0."""
    common = dict(RIDGE, lr=0.1, t_max=2.0, n_times=21, n_traj=400, n_blocks=1, two_time=True)
    full = run_dmft(**common)["M_R"]
    cut = run_dmft(**common, memory_lag=0.3)["M_R"]  # 3 steps
    lag = np.subtract.outer(np.arange(21), np.arange(21))
    inside = (lag >= 1) & (lag <= 3)
    np.testing.assert_allclose(cut[inside], full[inside], rtol=1e-12, atol=0)
    assert np.all(cut[lag > 3] == 0)
    assert np.min(np.abs(full[lag == 4])) > 0.1  # the cut removed something


def test_truncated_memory_converges_to_the_whole_memory():
    """Ridge GD: the error of m falls with the lag (M_R decays geometrically with it); the
    same seed on both sides, so the difference is the truncation alone."""
    common = dict(RIDGE, lr=0.1, t_max=5.0, n_times=51, n_traj=400, n_blocks=1)
    full = run_dmft(**common)["m"]
    errors = [np.max(np.abs(run_dmft(**common, memory_lag=lag)["m"] - full)) for lag in (0.5, 1.0, 2.0)]
    # measured 2.4e-3, 7.7e-4, 1.2e-4 (deterministic: same seed): each doubling of the lag
    # gains a factor 3 to 6, asked 2.5
    assert errors[0] > 2.5 * errors[1] > 2.5**2 * errors[2]
    assert errors[2] < 5e-4


def test_truncated_memory_on_phase_retrieval_moves_m_below_its_monte_carlo_error():
    """p-SGD phase retrieval through the escape: M_R(t, t - 5) is below 1e-4 of M_R(t, t - dt).

    Same seed on both sides. A lag of 5 moved m by 7e-4 (1000 trajectories; < 1e-4 with
    2000), which the escape amplifies from far smaller kernel changes; the bound 5e-3 is
    20 times below the block spread of m there (about 0.1). Lags of 2 and 1 (the teeth)
    moved it by 0.056 and 0.13.
    """
    common = dict(PHASE_PSGD, t_max=12.0, n_times=13, n_traj=1000, n_resp=250, n_blocks=1)
    full = run_dmft(**common)["m"]
    assert np.max(np.abs(run_dmft(**common, memory_lag=5.0)["m"] - full)) < 5e-3
    assert np.max(np.abs(run_dmft(**common, memory_lag=1.0)["m"] - full)) > 5e-2


def test_memory_lag_must_not_be_negative():
    with pytest.raises(ParameterError, match=r"memory_lag.*must be >= 0"):
        run_dmft(**RIDGE, lr=0.1, t_max=1.0, n_times=11, n_traj=64, memory_lag=-1.0)
