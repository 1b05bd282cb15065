"""The `amp` kernel: state evolution of Bayes-optimal GAMP and the replica-symmetric free entropy.

For a teacher-student GLM (:mod:`kernels.singlelayer.amp.params`) it computes, at
``d -> infinity`` (docs/amp.md §2):

- the SE path ``m^t``, ``mse^t = rho - m^t`` from ``m^0 = m0``, and ``f_RS(m^t)`` along it;
- the fixed points reached from the uninformed start (small ``m``: AMP's) and the informed
  start (``m`` near ``rho``), their free entropies, and from them the MSE and generalisation
  error of AMP and of the Bayes-optimal estimator (the fixed point of larger ``f_RS``).

The simulation counterpart is the `gamp` kernel (:mod:`kernels.singlelayer.amp.gamp`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kernels.base import Kernel, NumericalFailure, Seed, check
from kernels.schema import Output, pick
from kernels.singlelayer.amp import channels
from kernels.singlelayer.amp import schema as family
from kernels.singlelayer.amp import state_evolution as se
from kernels.singlelayer.amp.params import MAX_ITERATIONS, GLMInferenceParams
from kernels.singlelayer.amp.priors import PRIOR_CODES, RHO
from kernels.singlelayer.model import TEACHER_CODES


@dataclass(frozen=True, kw_only=True)
class AMPParams(GLMInferenceParams):
    """The shared parameters plus the fixed-point search's.

    Parameters
    ----------
    tolerance
        A fixed point is reached when the MSE changes by at most ``tolerance`` times itself
        in one step (or reaches 0, perfect recovery).
    max_iterations
        SE steps allowed to reach a fixed point from each start; not reaching it fails the point.
    """

    tolerance: float = 1e-9
    max_iterations: int = 20000

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.tolerance < 1, "tolerance", f"must be in (0, 1), got {self.tolerance!r}.")
        check(
            1 <= self.max_iterations <= MAX_ITERATIONS,
            "max_iterations",
            f"must be in [1, {MAX_ITERATIONS}], got {self.max_iterations!r}.",
        )


def codes(p: GLMInferenceParams) -> tuple[int, int]:
    """``(channel, prior)`` integer codes."""
    return TEACHER_CODES[p.teacher], PRIOR_CODES[p.prior]


class AMPKernel(Kernel):
    """State evolution and RS free entropy of Bayes-optimal GAMP (docs/amp.md §2-§5)."""

    name = "amp"
    version = "1"
    Params = AMPParams
    shape_params = frozenset({"iterations"})
    example = {"alpha": 1.5, "teacher": "abs", "m0": 0.05, "iterations": 10}
    # just below phase retrieval's AMP threshold the approach to the fixed point is slow
    failing_example = {"alpha": 1.12, "teacher": "abs", "max_iterations": 20}

    dims = family.DIMS
    outputs = pick(family.OUTPUTS, "m", "q", "mse") | {
        "free_entropy": Output(
            ("iteration",),
            "RS free entropy f_RS(m) along the path",
            description="inf over mhat of f_RS(m, mhat) at m = m^t (docs/amp.md §2.2); +-inf at "
            "perfect recovery where the output density concentrates (docs/amp.md §2.5)",
            allow_nan=True,
        ),
        "m_fixed": Output(("start",), "overlap m at the fixed point"),
        "free_entropy_fixed": Output(
            ("start",),
            "RS free entropy at the fixed point",
            description="+-inf as for free_entropy",
            allow_nan=True,
        ),
        "iterations_fixed": Output(("start",), "SE steps to the fixed point"),
        "mse_amp": Output(
            (), "MSE of AMP", description="rho - m at the fixed point from the uninformed start"
        ),
        "mse_bayes": Output(
            (),
            "minimum MSE (Bayes-optimal)",
            description="rho - m at the fixed point of larger free entropy (ties: larger m)",
        ),
        "test_error_amp": Output(
            (),
            "generalisation error of AMP",
            description="(0-1 error for sign: arccos(sqrt(m/rho))/pi; half the square error of the "
            "posterior-mean label, noise excluded, for linear and abs; docs/amp.md §2.4)",
        ),
        "test_error_bayes": Output((), "Bayes-optimal generalisation error", description="as test_error_amp"),
    }
    attrs = {
        "rho": RHO,
        "conventions": "X_mu_i ~ N(0, 1/d), z = X w*, n = alpha d; f_RS = Psi_w + alpha Psi_out - m mhat/2 "
        "(docs/amp.md §1)",
        "quadrature_tolerance": se.QUADRATURE_TOL,
    }

    def _run(self, params: AMPParams, seed: Seed) -> Mapping[str, np.ndarray]:
        channel, prior = codes(params)
        tol = se.QUADRATURE_TOL
        args = (channel, prior, params.alpha, params.noise)
        V, mhat = se.path(*args, RHO - params.m0, params.iterations, tol)
        m = RHO - V
        m[0] = params.m0  # exactly, as GAMP starts (RHO - (RHO - m0) is m0 only to round-off)
        out = {
            "m": m,
            "q": m.copy(),
            "mse": V,
            "free_entropy": se.free_entropy_path(*args, V, mhat, tol),
        }
        fixed = se.fixed_points(*args, params.tolerance, params.max_iterations, tol)
        if not all(fixed.converged):
            which = fixed.converged.index(False)
            raise NumericalFailure(
                f"SE from the {('uninformed', 'informed')[which]} start did not reach a fixed point in "
                f"{params.max_iterations} steps (MSE {fixed.mse[which]:.6g}, still changing by more than "
                f"`tolerance` = {params.tolerance:g} of itself per step): SE slows down near a spinodal "
                "and near alpha = 1 for noiseless continuous channels, where MSE -> 0 at rate ~1/alpha "
                "(docs/amp.md §5); raise `max_iterations`",
                out,
            )
        V_amp, V_bayes = fixed.mse_amp, fixed.mse_bayes
        error = channels.bayes_test_error
        return out | {
            "m_fixed": RHO - np.array(fixed.mse),
            "free_entropy_fixed": np.array(fixed.free_entropy),
            "iterations_fixed": np.array(fixed.steps, dtype=np.float64),
            "mse_amp": np.float64(V_amp),
            "mse_bayes": np.float64(V_bayes),
            "test_error_amp": np.float64(error(channel, RHO - V_amp, V_amp, params.noise, RHO, tol)),
            "test_error_bayes": np.float64(error(channel, RHO - V_bayes, V_bayes, params.noise, RHO, tol)),
        }


__all__ = ["AMPKernel", "AMPParams", "codes"]
