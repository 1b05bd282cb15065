"""Parameters of the `dmft` kernel: the shared single-layer names plus the solver's own.

What each parameter means is in the class docstring (``sweeper kernels`` prints its first
lines); the theory is ``docs/dmft.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kernels.base import check
from kernels.singlelayer.model import SingleLayerParams
from kernels.timegrid import check_step_count, check_steps

# The effective process needs l'' as a function; the hinge's is a delta at the margin.
HINGE_REFUSED = (
    "`hinge` is not supported by the `dmft` kernel. Its second derivative is a delta "
    "function at the margin y r = 1, but the effective process only sees l'' = 0 (true "
    "almost everywhere), so the kink drops out of nu-tilde and of the memory kernel M_R "
    "(which carries s_hat l'' at both times) and the theory is wrong: on the two-cluster "
    "mixture with GD it gives Q and the train loss off by factors of about 2 and 6 against "
    "`sgd_multipass` simulations. Use a smooth loss (`logistic`, `logcosh` or `square`), or the "
    "`sgd_multipass` kernel, which simulates hinge exactly."
)


@dataclass(frozen=True, kw_only=True)
class DMFTParams(SingleLayerParams):
    """Parameters of the `dmft` kernel: the shared single-layer names plus solver knobs.

    Parameters
    ----------
    n_traj
        Trajectories of the effective process per block.
    n_blocks
        Independent blocks (separate random streams); outputs are block means,
        the Monte-Carlo error is the standard error over blocks.
    n_resp
        Trajectories (per block, a subset) used for the response kernel ``M_R``;
        0 means all. Its cost is ``n_resp K^3 / 6`` multiply-adds.
    dt
        0: exact discrete time with step ``lr``. ``dt > 0``: flow limit
        (``lr -> 0`` at fixed ``tau``) integrated with step ``dt``; this is the
        exact discrete process at step ``dt`` (first order in ``dt``; extrapolate
        two ``dt`` for second order, as tests/kernels/singlelayer/test_dmft.py does).
    two_time
        Also return ``M_C``, ``M_R``, ``C``, ``R`` on the saved grid (large).
    moment_matching
        Orthonormalise the Gaussian inputs across trajectories (variance reduction).
    max_memory_gb
        Refuse (ParameterError) a point whose arrays would exceed this.
    integrator
        Flow limit only (``dt > 0``). ``"explicit"``: the exact discrete process at
        step ``dt``. ``"semi-implicit"``: each trajectory's step is divided by
        ``1 + dt sig2 max(s_hat l'', 0)`` (linearly implicit Euler on its own
        curvature, with the matching response), which stays stable where a few
        trajectories of large curvature make the explicit step overshoot (phase
        retrieval: ``l'' ~ 3 r^2``), at the price of a larger O(dt) error in fast
        transients; both converge to the same flow as ``dt -> 0``.
    iterations
        Causal passes per block (global iterations, docs/dmft.md §4.4). Pass 1 is the
        finite-sample fixed point; each later pass draws fresh trajectories and
        drives them with the damped kernels ``(1 - w) previous + w new``, so the
        kernels average the Monte-Carlo noise of all passes.
    mixing
        Least weight ``w`` of the new pass: pass ``i`` (from 2) uses
        ``w = max(mixing, 1/i)``. ``0`` makes the kernels the running mean of all
        passes (lowest variance); ``0.5`` is the damping of the public reference code.
    memory_lag
        Memory truncation (docs/dmft.md §4.6): keep ``M_R(t, t')`` only for
        ``t - t' <= memory_lag`` (time units) and set it to zero beyond, which cuts the
        response from ``n_resp K^3 / 6`` to about ``n_resp K L^2 / 2`` multiply-adds
        (``L`` the lag in steps). ``0`` keeps the whole memory (exact). Worth it for long
        runs whose ``M_R`` decays with the lag: on p-SGD phase retrieval it falls below
        ``1e-4`` of its first-lag value within 5 time units, and a lag of 5 moves ``m``
        by less than ``1e-3``.
    tolerance
        Stop iterating once the residual (largest change between the last two
        passes of ``m``, and of ``M_C``, ``M_R`` relative to their largest entry)
        is at most this; if it is still larger after ``iterations`` passes the point
        fails with the residual in its message. ``0``: run every pass, never fail.

    Notes
    -----
    ``loss = "hinge"`` is refused (:data:`HINGE_REFUSED`): its ``l''`` is a delta at
    the margin, which the effective process, built on pointwise ``l''``, cannot carry.

    ``init = "random"`` starts at ``m(0) = 0`` exactly (the ``d -> infinity`` value
    of a random start); ``m = 0`` is a fixed point when the teacher is even
    (phase retrieval), so escaping it is a finite-d effect this kernel does not
    describe: use a small warm start instead.
    """

    n_traj: int = 20000
    n_blocks: int = 4
    n_resp: int = 0
    dt: float = 0.0
    two_time: bool = False
    moment_matching: bool = True
    max_memory_gb: float = 4.0
    integrator: Literal["explicit", "semi-implicit"] = "explicit"
    iterations: int = 1
    mixing: float = 0.0
    tolerance: float = 0.0
    memory_lag: float = 0.0

    def __post_init__(self) -> None:
        # before the shared checks: hinge is refused whatever the labels
        check(self.loss != "hinge", "loss", HINGE_REFUSED)
        super().__post_init__()
        check(self.dt >= 0, "dt", f"must be >= 0 (0 = discrete time with step lr), got {self.dt!r}.")
        check(self.n_traj >= 16, "n_traj", f"must be at least 16, got {self.n_traj!r}.")
        check(self.n_blocks >= 1, "n_blocks", f"must be at least 1, got {self.n_blocks!r}.")
        check(
            0 <= self.n_resp <= self.n_traj,
            "n_resp",
            f"must be in [0, n_traj] (0 = all), got {self.n_resp!r}.",
        )
        check(self.max_memory_gb > 0, "max_memory_gb", f"must be positive, got {self.max_memory_gb!r}.")
        check(
            self.integrator == "explicit" or self.dt > 0,
            "integrator",
            "the semi-implicit step only exists in the flow limit (dt > 0); "
            "with dt = 0 the process is discrete SGD at step lr, which is explicit.",
        )
        check(
            self.memory_lag >= 0,
            "memory_lag",
            f"must be >= 0 (time units; 0 keeps the whole memory), got {self.memory_lag!r}.",
        )
        check(self.iterations >= 1, "iterations", f"must be at least 1, got {self.iterations!r}.")
        check(0 <= self.mixing <= 1, "mixing", f"must be in [0, 1], got {self.mixing!r}.")
        check(
            self.tolerance >= 0, "tolerance", f"must be >= 0 (0 = no stopping rule), got {self.tolerance!r}."
        )
        check(
            self.tolerance == 0 or self.iterations > 1,
            "tolerance",
            "needs `iterations` >= 2: the residual is the change between two passes.",
        )
        if self.dt > 0:
            check(self.algorithm != "sgd", "dt", "i.i.d. SGD has no flow limit (tau = lr/b); use `dt = 0`.")
        step = self.step
        name = "dt" if self.dt > 0 else "lr"
        check_step_count(self.t_max / step, name, f"t_max / {name}", f"raise `{name}` or lower `t_max`")
        check(self.t_max >= step, "t_max", f"must cover at least one step of {step!r}, got {self.t_max!r}.")
        check_steps(self, step, "dt" if self.dt > 0 else "lr")  # the process saves at whole steps

    def chain_step(self) -> tuple[str, float]:
        """The selection chain moves by the integration step: ``dt`` in the flow limit."""
        return ("dt", self.dt) if self.dt > 0 else ("lr", self.lr)

    @property
    def step(self) -> float:
        """Integration step: ``lr`` (exact discrete time) or ``dt`` (flow limit)."""
        return self.dt if self.dt > 0 else self.lr
