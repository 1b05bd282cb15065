"""The `sgd` kernel: finite-N SGD simulations, the ground truth of the theory kernels.

One registry entry, two modes chosen by the shape parameter ``mode``:

``"multipass"``
    GD / SGD / persistent SGD of a single-layer model on a fixed data set of
    ``n = alpha d`` samples, the finite-N counterpart of the `dmft` kernel
    (Mignacco et al. 2020, arXiv 2006.06098; Mignacco, Urbani & Zdeborova 2021,
    arXiv 2103.04902; ``/work/shared/science/dmft.md`` §1). Parameters and
    definitions are shared with `dmft` through
    :class:`kernels.singlelayer.SingleLayerParams`; simulator in
    :mod:`kernels.sgd_multipass`. Outputs ``m``, ``Q``, ``train_loss``,
    ``train_error``, ``test_error`` on the saved grid (time ``t = step * lr``),
    and with ``two_time = True`` also ``C`` and ``R`` on ``("time", "time2")``.

``"online"``
    One-pass SGD of two-layer networks (Saad & Solla 1995, Goldt et al. 2019,
    Veiga et al. 2022), the counterpart of the `ode` and `meanfield` kernels,
    with the parameter names of :class:`kernels.twolayer.TwoLayerParams`;
    simulator in :mod:`kernels.sgd_online`.

Parameters
----------
Each mode has its own parameter class (:class:`MultipassParams`,
:class:`OnlineParams`), which inherits the shared names from the theory side
and adds the simulation-only knobs. :class:`SGDParams` is their union plus
``mode``; it validates a point by building the active mode's class from its
fields, so each mode's checks (and error messages) are exactly its own. A name
both modes use with different types or defaults (e.g. ``init``, ``teacher``)
takes the union of the types and the default ``None``, meaning "the active
mode's default"; so read values from ``params.active`` (the validated
:class:`MultipassParams` or :class:`OnlineParams`), not from ``params`` itself.
Parameters of the other mode are ignored.

Shape parameters: ``mode``, the time grid, ``two_time`` (multipass), ``K``, ``M``,
``n_test`` and ``save_particles`` (online).

Random streams (:func:`kernels.base.rng`): multipass ``"teacher"``, ``"data"``,
``"init"``, ``"batches"``, ``"langevin"``, ``"response"``; online ``"teacher"`` and
``"init"`` (through :func:`kernels.twolayer.draw_weights`), ``"data"``,
``"label_noise"``, ``"test"``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kernels import sgd_multipass, sgd_online
from kernels.base import Kernel, Output, Seed, check, coerce
from kernels.sgd_online import OnlineParams
from kernels.singlelayer import SingleLayerParams
from kernels.timegrid import TIME_GRID_PARAMS, TimeGridParams, check_steps, saved_times
from kernels.twolayer import time_unit


@dataclass(frozen=True, kw_only=True)
class MultipassParams(SingleLayerParams):
    """Multipass mode: the shared single-layer names plus the simulation knobs.

    Parameters
    ----------
    d
        Input dimension (``n = round(alpha d)`` samples).
    two_time
        Also output ``C(t, t')`` and ``R(t, t')``; the cost grows with the
        number of saved times (one perturbed replica per saved ``t'``).
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
        check_steps(self, self.lr)  # the simulation saves at whole steps of lr


MODES: dict[str, type] = {"multipass": MultipassParams, "online": OnlineParams}


def _widen(a: Any, b: Any) -> Any:
    """A type hint accepting the values of both ``a`` and ``b``, and None."""
    if typing.get_origin(a) is Literal and typing.get_origin(b) is Literal:
        return Literal[tuple(dict.fromkeys(typing.get_args(a) + typing.get_args(b)))] | None
    return (a if a == b else a | b) | None


def combine_modes(modes: Mapping[str, type]) -> tuple[list, frozenset[str]]:
    """Fields of one flat dataclass with ``mode`` and every field of every mode's class.

    Returns the ``make_dataclass`` field list and the names whose type or default
    differs between modes (their default is None: the active mode's default).
    """
    spec: dict[str, list[Any]] = {}
    conflicts: set[str] = set()
    for cls in modes.values():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in spec:
                spec[f.name] = [hints[f.name], f.default]
            elif spec[f.name] != [hints[f.name], f.default] and f.name not in conflicts:
                conflicts.add(f.name)
                spec[f.name] = [_widen(spec[f.name][0], hints[f.name]), None]
            elif f.name in conflicts:
                spec[f.name][0] = _widen(spec[f.name][0], hints[f.name])
    names = tuple(modes)
    fields = [("mode", Literal[names], dataclasses.field(default=names[0]))]
    fields += [(n, t, dataclasses.field(default=dflt)) for n, (t, dflt) in spec.items()]
    return fields, frozenset(conflicts)


_FIELDS, CONFLICTS = combine_modes(MODES)


def _post_init(self) -> None:
    object.__setattr__(self, "_active", _active_params(self))


def _active_params(self) -> Any:
    # coerce against the mode's own hints: a widened name must still take a value the
    # active mode knows (e.g. `teacher = "abs"` is multipass-only)
    cls = MODES[self.mode]
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(self, f.name)
        if f.name in CONFLICTS and value is None:
            continue
        values[f.name] = coerce(f.name, value, hints[f.name])
    return cls(**values)


SGDParams = dataclasses.make_dataclass(
    "SGDParams",
    _FIELDS,
    bases=(TimeGridParams,),
    frozen=True,
    kw_only=True,
    namespace={
        "__post_init__": _post_init,
        "active": property(lambda self: self._active),
        "__doc__": (
            "Parameters of the `sgd` kernel: ``mode`` and the union of the modes' parameters "
            "(:class:`MultipassParams`, :class:`OnlineParams`). ``active`` is the validated "
            "parameter object of the active mode."
        ),
    },
)
SGDParams.__module__ = __name__  # picklable by reference (Ray ships points to actors)


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


_ONLINE_OUTPUTS = {
    "risk": Output(
        ("time",),
        "population risk from the overlaps",
        description="E[(f*(x) - f(x))^2] / 2 by the closed form of kernels.twolayer.risk; "
        "excludes the label-noise floor noise/2",
    ),
    "Q": Output(("time", "student", "student2"), "student-student overlap Q = W W^T / d"),
    "M": Output(("time", "student", "teacher"), "student-teacher overlap M = W W*^T / d"),
    "P": Output(
        ("teacher", "teacher2"),
        "teacher-teacher overlap P = W* W*^T / d",
        description="constant: the teacher is fixed (same dims as the ode kernel's P)",
    ),
    "v": Output(("time", "student"), "student second-layer weights v"),
}


class SGDKernel(Kernel):
    """Finite-N SGD; see the module docstring for the two modes."""

    name = "sgd"
    version = "1"
    Params = SGDParams
    shape_params = frozenset({"mode", "two_time", "K", "M", "n_test", "save_particles"} | TIME_GRID_PARAMS)
    example = {"mode": "online", "d": 50, "K": 2, "M": 2, "t_max": 1.0, "n_times": 3}

    def outputs(self, params: Any) -> dict[str, Output]:
        p = params.active
        if params.mode == "online":
            out = dict(_ONLINE_OUTPUTS)
            if p.n_test:
                out["risk_test"] = Output(
                    ("time",),
                    "population risk on a fixed test set",
                    description=f"mean over n_test = {p.n_test} noiseless samples of (f* - f)^2 / 2",
                )
            if p.save_particles:
                out["m"] = Output(("time", "unit", "teacher"), "teacher overlap m_jr = w_j.w*_r/d")
                out["q"] = Output(("time", "unit"), "self overlap q_j = |w_j|^2/d")
                out["a"] = Output(("time", "unit"), "second-layer weight a_j")
            return out
        out = dict(_MULTIPASS_OUTPUTS)
        if p.two_time:
            out["C"] = Output(("time", "time2"), "correlation C(t, t') = w(t).w(t')/d")
            out["R"] = Output(
                ("time", "time2"),
                "response R(t, t') = (1/d) sum_j dw_j(t)/dH_j(t')",
                description="finite field with common random numbers; 0 for t < t'",
            )
        return out

    def coords(self, params: Any) -> dict[str, np.ndarray]:
        p = params.active
        times = saved_times(p)
        out = {"time": times}
        if params.mode == "online":
            out |= {
                "student": np.arange(p.K),
                "student2": np.arange(p.K),
                "teacher": np.arange(p.M),
                "teacher2": np.arange(p.M),
            }
            if p.save_particles:
                out["unit"] = np.arange(p.save_particles)
        elif p.two_time:
            out["time2"] = times.copy()
        return out

    def coord_attrs(self, params: Any) -> dict[str, dict[str, str]]:
        p = params.active
        unit = time_unit(p) if params.mode == "online" else "step * lr"
        out = {"time": {"long_name": "time", "units": unit}}
        if params.mode == "multipass" and p.two_time:
            out["time2"] = {"long_name": "earlier time t'", "units": unit}
        return out

    def attrs(self, params: Any) -> dict[str, Any]:
        p = params.active
        if params.mode == "online":
            return {
                "mode": "online",
                "time_units": time_unit(p),
                "risk": "E[(f* - f)^2]/2 against the noiseless teacher; excludes noise/2",
                "committee": p.committee,
            }
        return {
            "mode": "multipass",
            "time_units": "t = step * lr (dmft.md §1.3)",
            "loss_normalisation": "sum over samples; train_loss is the per-sample mean",
        }

    def _run(self, params: Any, seed: Seed) -> Mapping[str, np.ndarray]:
        p = params.active
        if params.mode == "online":
            return sgd_online.simulate(p, seed)
        return sgd_multipass.simulate(p, p.d, seed, p.two_time, p.response_field)
