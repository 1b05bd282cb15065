"""The `sgd_multipass` kernel: finite-d GD / SGD / persistent SGD on a fixed data set.

The ground truth of the `dmft` kernel: the same parameter names (the shared
:class:`kernels.singlelayer.model.SingleLayerParams`), the same outputs, on the same
saved times (``t = step * lr``), at a finite dimension ``d`` with ``n = round(alpha d)``
samples (Mignacco et al. 2020, arXiv 2006.06098; Mignacco, Urbani & Zdeborova 2021,
arXiv 2103.04902; ``docs/singlelayer.md``). The simulator is
:mod:`kernels.singlelayer.sgd_multipass.simulation`.

With ``hidden = K > 1`` the student is K quadratic hidden units (over-parametrised
phase retrieval, Sarao Mannelli, Vanden-Eijnden & Zdeborova 2020, arXiv 2006.15459;
``docs/singlelayer.md`` §12), simulated by
:mod:`kernels.singlelayer.sgd_multipass.committee`.

Random streams (:func:`kernels.base.rng`): ``"teacher"`` (from ``teacher_seed`` when it is
set), ``"data"``, ``"init"``, ``"batches"``, ``"langevin"``, ``"response"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kernels.base import Kernel, Seed, check
from kernels.schema import Output, pick
from kernels.singlelayer import schema as family
from kernels.singlelayer.model import SingleLayerParams
from kernels.singlelayer.sgd_multipass.committee import simulate_committee
from kernels.singlelayer.sgd_multipass.simulation import simulate
from kernels.timegrid import TIME_GRID_PARAMS, check_step_count, check_steps


@dataclass(frozen=True, kw_only=True)
class MultipassParams(SingleLayerParams):
    """The shared single-layer parameters plus the simulation's own.

    Parameters
    ----------
    d
        Input dimension (``n = round(alpha d)`` samples).
    two_time
        Also output ``C(t, t')`` and ``R(t, t')``; the cost grows with the number of
        saved times (one perturbed replica per saved ``t'``).
    response_field
        Size of the kick that measures ``R``.
    hidden
        Hidden units ``K`` of a quadratic student ``f = (1/K) sum_k (w_k.x)^2 / d``
        (phase retrieval: ``teacher = "abs"``, ``loss = "phase"``); 1 is the single-layer model.
        With ``K > 1``, ``m = sqrt(v^T S v) / d`` and ``Q = tr S / d`` for ``S = W^T W / K``
        (docs/singlelayer.md §12.2).
    student_matrix
        Also output ``matrix_error``, the distance of ``S = W^T W / K`` from the teacher's ``w* w*^T``.
    teacher_seed
        Draw the teacher (special direction) from this seed in place of the point's, so that
        it is shared by all seeds; -1: the point's seed.
    """

    d: int = 1000
    two_time: bool = False
    response_field: float = 1e-4
    hidden: int = 1
    student_matrix: bool = False
    teacher_seed: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.d >= 1, "d", f"must be a positive integer, got {self.d!r}.")
        check(self.response_field > 0, "response_field", f"must be positive, got {self.response_field!r}.")
        check(self.hidden >= 1, "hidden", f"must be a positive integer, got {self.hidden!r}.")
        check(
            self.teacher_seed >= -1,
            "teacher_seed",
            f"must be -1 (the point's seed) or a seed >= 0, got {self.teacher_seed!r}.",
        )
        if self.hidden > 1:
            problem = (self.model, self.teacher, self.loss) != ("glm", "abs", "phase")
            check(
                not problem,
                "hidden",
                f'{self.hidden!r} hidden units need phase retrieval: set `model = "glm"`, '
                f'`teacher = "abs"`, `loss = "phase"` (got {self.model!r}, {self.teacher!r}, {self.loss!r}).',
            )
            check(
                not self.two_time,
                "two_time",
                "is not measured with hidden units: set `two_time = false` or `hidden = 1` "
                f"(got hidden = {self.hidden!r}).",
            )
        check_step_count(self.t_max / self.lr, "lr", "t_max / lr", "raise `lr` or lower `t_max`")
        check_steps(self, self.lr)  # the simulation saves at whole steps of lr


class SGDMultipassKernel(Kernel):
    """Finite-d GD / SGD / persistent SGD of a single-layer model on a fixed data set."""

    name = "sgd_multipass"
    version = "1"
    Params = MultipassParams
    shape_params = TIME_GRID_PARAMS | {"two_time", "student_matrix"}
    example = {"d": 100, "alpha": 2.0, "lr": 0.1, "t_max": 1.0, "n_times": 3}
    failing_example = {"d": 100, "alpha": 2.0, "lr": 2.0, "loss": "square", "t_max": 40.0, "n_times": 3}

    dims = family.DIMS
    outputs = pick(family.OUTPUTS, "m", "Q", "train_loss", "train_error", "test_error") | {
        "matrix_error": Output(
            ("time",),
            "matrix error |S-S*|_F/|S*|_F",
            description="S = W^T W / K of the student, S* = w* w*^T of the teacher; 0 iff the test "
            "error is 0 (docs/singlelayer.md §12.2)",
            when="student_matrix",
        ),
        "C": family.OUTPUTS["C"],
        "R": dataclasses.replace(
            family.OUTPUTS["R"],
            long_name="response R(t, t') = (1/d) sum_j dw_j(t)/dH_j(t')",
            description="a small kick at t' with common random numbers: R(t', t') = 1, 0 for t < t' "
            "(the dmft kernel's R(t, t') pairs with this R(t, t' + lr))",
        ),
    }
    attrs = family.ATTRS | {"time_units": "t = step * lr (docs/singlelayer.md)"}

    def _run(self, params: MultipassParams, seed: Seed) -> Mapping[str, np.ndarray]:
        if params.hidden > 1:
            return simulate_committee(params, params.d, params.hidden, seed, params.student_matrix)
        out = simulate(params, params.d, seed, params.two_time, params.response_field)
        if params.student_matrix:
            out["matrix_error"] = rank_one_matrix_error(out["m"], out["Q"])
        return out


def rank_one_matrix_error(m: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """``|w w^T - v v^T|_F / |v v^T|_F`` from ``(m, Q)``: ``sqrt(1 - 2 m^2 + Q^2)``."""
    return np.sqrt(np.maximum(1.0 - 2.0 * m**2 + Q**2, 0.0))
