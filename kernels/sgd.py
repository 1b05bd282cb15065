"""The `sgd` kernel: finite-N SGD simulations, the ground truth of the theory kernels.

One registry entry, two modes chosen by the shape parameter ``mode``:

``"multipass"``
    GD / SGD / persistent SGD of a single-layer model on a fixed data set of
    ``n = alpha d`` samples, the finite-N counterpart of the `dmft` kernel
    (Mignacco et al. 2020, arXiv 2006.06098; Mignacco, Urbani & Zdeborova 2021,
    arXiv 2103.04902; ``/work/shared/science/dmft.md`` §1). Parameters and
    definitions are shared with `dmft` through :class:`kernels.singlelayer.SingleLayerParams`;
    the simulator is :mod:`kernels.sgd_multipass`. Outputs ``m``, ``Q``,
    ``train_loss``, ``train_error``, ``test_error`` on the saved grid (time
    ``t = step * lr``), and with ``two_time = True`` also ``C`` and ``R`` on
    ``("time", "time2")``.

``"online"``
    One-pass SGD of two-layer networks (Saad & Solla 1995, Goldt et al. 2019,
    Veiga et al. 2022), the counterpart of the `ode` and `meanfield` kernels;
    see :mod:`kernels.sgd_online`.

Parameters of the other mode are ignored (their defaults are recorded in the
store like any other fixed parameter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kernels.base import Kernel, Output, Seed, check
from kernels.sgd_multipass import simulate
from kernels.singlelayer import SingleLayerParams
from kernels.timegrid import TIME_GRID_PARAMS, saved_times


@dataclass(frozen=True, kw_only=True)
class SGDParams(SingleLayerParams):
    """Parameters of the `sgd` kernel.

    The shared single-layer names are documented in
    :class:`kernels.singlelayer.SingleLayerParams`; the simulation-only ones:

    Parameters
    ----------
    mode
        ``multipass`` (fixed data set, DMFT setting) or ``online`` (one-pass
        two-layer networks, ODE / mean-field setting). A shape parameter.
    d
        Input dimension.
    two_time
        Multipass: also output ``C(t, t')`` and ``R(t, t')`` (cost grows with
        the number of saved times). A shape parameter.
    response_field
        Multipass, ``two_time``: size of the kick used to measure ``R``.
    """

    mode: Literal["multipass", "online"] = "multipass"
    d: int = 1000
    two_time: bool = False
    response_field: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.d >= 1, "d", f"must be a positive integer, got {self.d!r}.")
        check(self.response_field > 0, "response_field", f"must be positive, got {self.response_field!r}.")
        check(
            self.mode == "multipass" or not self.two_time,
            "two_time",
            'two-time functions are only measured in `mode = "multipass"`.',
        )


_MULTIPASS_OUTPUTS = {
    "m": Output(("time",), "teacher overlap m = w.v/d"),
    "Q": Output(("time",), "self overlap Q = |w|^2/d"),
    "train_loss": Output(("time",), "training loss per sample (mean of l over the data set)"),
    "train_error": Output(
        ("time",),
        "training error",
        description="mean over the training set: 0-1 error (classification), squared error / 2 "
        "(linear teacher) or (y^2 - r^2)^2 / 4 (phase retrieval)",
    ),
    "test_error": Output(
        ("time",),
        "generalisation error from (m, Q)",
        description="closed form of kernels.singlelayer.test_error; noiseless labels, noise floor excluded",
    ),
}


class SGDKernel(Kernel):
    """Finite-N SGD; see the module docstring for the two modes."""

    name = "sgd"
    version = "1"
    Params = SGDParams
    shape_params = frozenset({"mode", "two_time"} | TIME_GRID_PARAMS)

    def outputs(self, params: SGDParams) -> dict[str, Output]:
        out = dict(_MULTIPASS_OUTPUTS)
        if params.two_time:
            out["C"] = Output(("time", "time2"), "correlation C(t, t') = w(t).w(t')/d")
            out["R"] = Output(
                ("time", "time2"),
                "response R(t, t') = (1/d) sum_j dw_j(t)/dH_j(t')",
                description="finite field with common random numbers; 0 for t < t'",
            )
        return out

    def coords(self, params: SGDParams) -> dict[str, np.ndarray]:
        times = saved_times(params)
        out = {"time": times}
        if params.two_time:
            out["time2"] = times.copy()
        return out

    def coord_attrs(self, params: SGDParams) -> dict[str, dict[str, str]]:
        unit = "step * lr"
        out = {"time": {"long_name": "time", "units": unit}}
        if params.two_time:
            out["time2"] = {"long_name": "earlier time t'", "units": unit}
        return out

    def attrs(self, params: SGDParams) -> dict[str, Any]:
        return {
            "time_units": "t = step * lr (dmft.md §1.3)",
            "loss_normalisation": "sum over samples; train_loss is the per-sample mean",
            "batch_normalise": str(params.batch_normalise),
        }

    def _run(self, params: SGDParams, seed: Seed) -> Mapping[str, np.ndarray]:
        return simulate(params, params.d, seed, params.two_time, params.response_field)
