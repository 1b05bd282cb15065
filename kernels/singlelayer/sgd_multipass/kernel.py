"""The `sgd_multipass` kernel: finite-d GD / SGD / persistent SGD on a fixed data set.

The ground truth of the `dmft` kernel: the same parameter names (the shared
:class:`kernels.singlelayer.model.SingleLayerParams`), the same outputs, on the same
saved times (``t = step * lr``), at a finite dimension ``d`` with ``n = round(alpha d)``
samples (Mignacco et al. 2020, arXiv 2006.06098; Mignacco, Urbani & Zdeborova 2021,
arXiv 2103.04902; ``docs/singlelayer.md``). The simulator is
:mod:`kernels.singlelayer.sgd_multipass.simulation`.

Random streams (:func:`kernels.base.rng`): ``"teacher"``, ``"data"``, ``"init"``,
``"batches"``, ``"langevin"``, ``"response"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kernels.base import Kernel, Seed, check
from kernels.schema import pick
from kernels.singlelayer import schema as family
from kernels.singlelayer.model import SingleLayerParams
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
    """

    d: int = 1000
    two_time: bool = False
    response_field: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.d >= 1, "d", f"must be a positive integer, got {self.d!r}.")
        check(self.response_field > 0, "response_field", f"must be positive, got {self.response_field!r}.")
        check_step_count(self.t_max / self.lr, "lr", "t_max / lr", "raise `lr` or lower `t_max`")
        check_steps(self, self.lr)  # the simulation saves at whole steps of lr


class SGDMultipassKernel(Kernel):
    """Finite-d GD / SGD / persistent SGD of a single-layer model on a fixed data set."""

    name = "sgd_multipass"
    version = "1"
    Params = MultipassParams
    shape_params = TIME_GRID_PARAMS | {"two_time"}
    example = {"d": 100, "alpha": 2.0, "lr": 0.1, "t_max": 1.0, "n_times": 3}
    failing_example = {"d": 100, "alpha": 2.0, "lr": 2.0, "loss": "square", "t_max": 40.0, "n_times": 3}

    dims = family.DIMS
    outputs = pick(family.OUTPUTS, "m", "Q", "train_loss", "train_error", "test_error") | {
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
        return simulate(params, params.d, seed, params.two_time, params.response_field)
