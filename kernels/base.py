"""The kernel contract: parameters, declared outputs, and one `run` per point.

How to add a kernel
-------------------
1. Put it in its model family's folder (``kernels/singlelayer/``: fixed data set;
   ``kernels/twolayer/``: two-layer networks learning online), as one module or, for a
   kernel with several numerical parts, a package whose module names say what each holds.
   One algorithm per kernel.
2. Write a frozen, keyword-only dataclass for the parameters, inheriting the family's
   shared parameters (:class:`kernels.singlelayer.model.SingleLayerParams`,
   :class:`kernels.twolayer.model.TwoLayerParams`). Give every field a default and a type
   hint (``float``, ``int``, ``bool``, ``str``, ``Literal[...]``, ``tuple[float, ...]``
   for arrays), and document each in the class docstring's numpydoc ``Parameters``
   section: its first line is what ``sweeper kernels`` prints. Check physics constraints
   in ``__post_init__`` and raise :class:`ParameterError` naming the field (use
   :func:`check`; call ``super().__post_init__()``).
3. Subclass :class:`Kernel`; set ``name``, ``version``, ``Params`` and ``shape_params``
   (the parameters that change an output's shape, coordinates or labels: they may not
   be swept).
4. Declare the schema (:mod:`kernels.schema`): ``dims``, ``outputs`` and ``attrs``, taking
   the family's shared declarations (``kernels/<family>/schema.py``) for every quantity
   the family's other kernels also produce. Only shape parameters may change them.
5. Implement ``_run(params, seed)`` returning ``{name: ndarray}``. Draw random numbers
   only through :func:`rng`, so that paired kernels (a theory and its simulation) draw
   the same initial condition from the same seed. On numerical failure raise
   :class:`NumericalFailure` (optionally with the partial outputs).
6. Set ``example`` to small parameters that run in about a second, and
   ``failing_example`` to parameters that fail numerically (the contract suite in
   ``tests/kernels/test_contract.py`` runs every kernel on both).
7. Add one line to ``kernels/registry.py`` and a page (or a section) to ``docs/``.
8. A point that is a mean over independent parts (the DMFT's blocks of trajectories) may
   declare ``parts``, the int parameter that counts them, and implement
   ``_run_part(params, seed, part)`` (one part's arrays, its own random streams) and
   ``_combine(params, parts)`` (the point's outputs from all of them) instead of ``_run``.
   ``run`` is then the combination of the parts computed in order; the engine may compute
   them on several workers and combine them when the last arrives, with the same numbers
   (``tests/kernels/test_contract.py`` checks it).
9. Versions: a kernel's ``version`` goes up whenever its numbers change for the same
   parameters and seed (the store refuses to mix results of two versions); record the
   change in ``CHANGELOG.md`` and re-record its cases in ``tests/golden/``. A new
   parameter keeps the version only if its default gives the numbers of before: stores
   made before it existed then resume under grids that leave it at its default.

:meth:`Kernel.run` does the bookkeeping: it calls ``_run``, checks every output
against the declared schema, turns non-finite values and :class:`NumericalFailure`
into a failed :class:`Result`, and never raises for a numerical problem.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from kernels.schema import Dim, Output, Schema, evaluate

Seed = int | Sequence[int]


class ParameterError(ValueError):
    """A parameter value or name is invalid; the message names the field."""


class NumericalFailure(Exception):
    """Raised inside ``_run`` when a point diverges or does not converge.

    ``outputs`` may carry what was computed before the failure (e.g. a
    trajectory up to the divergence time); missing entries are stored as NaN.
    """

    def __init__(self, message: str, outputs: Mapping[str, np.ndarray] | None = None):
        super().__init__(message)
        self.outputs = dict(outputs or {})


@dataclass(frozen=True)
class Result:
    """What one point produced. ``ok`` is False for a numerical failure."""

    ok: bool
    outputs: dict[str, np.ndarray]
    message: str = ""


@dataclass(frozen=True)
class Part:
    """One independent part of a point (a kernel that declares ``parts``): its arrays, or its failure."""

    ok: bool
    values: dict[str, np.ndarray]
    message: str = ""


def rng(seed: Seed, stream: str) -> np.random.Generator:
    """An independent random generator for one named stream of one point.

    The same (seed, stream) gives the same numbers in every kernel and process:
    e.g. the `ode` and `sgd_online` kernels both draw their initial weights from the
    stream ``"init"`` so that paired runs start from the same overlaps.
    """
    entropy = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]
    key = zlib.crc32(stream.encode())
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(key,)))


class Kernel:
    """Base class of all kernels; see the module docstring for the recipe."""

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    Params: ClassVar[type]
    shape_params: ClassVar[frozenset[str]] = frozenset()
    # -- the declared schema (kernels.schema) --
    dims: ClassVar[Mapping[str, Dim]] = {}
    outputs: ClassVar[Mapping[str, Output]] = {}
    attrs: ClassVar[Mapping[str, Any]] = {}
    # Small parameters that run in about a second, and parameters that fail numerically:
    # the contract suite runs every kernel on both.
    example: ClassVar[dict[str, Any]] = {}
    failing_example: ClassVar[dict[str, Any] | None] = None
    # The int parameter counting a point's independent parts (None: a point is one run).
    parts: ClassVar[str | None] = None

    def schema(self, params: Any) -> Schema:
        """Dims with coordinates and labels, outputs and dataset attrs for ``params``."""
        return evaluate(self.dims, self.outputs, self.attrs, params)

    # -- parameters ---------------------------------------------------------
    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls.Params))

    @classmethod
    def make_params(cls, **values: Any) -> Any:
        """Build validated parameters; unknown names list the known ones."""
        known = cls.parameter_names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ParameterError(
                f"Unknown parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(u) for u in unknown)} for kernel '{cls.name}'. "
                f"Known parameters: {', '.join(repr(k) for k in known)}."
            )
        hints = _type_hints(cls.Params)
        coerced = {k: coerce(k, v, hints[k]) for k, v in values.items()}
        return cls.Params(**coerced)

    # -- running ------------------------------------------------------------
    def run(self, params: Any, seed: Seed = 0) -> Result:
        """Run one point; numerical failure comes back as ``Result(ok=False)``."""
        if self.parts is not None:
            parts: list[Part] = []
            for part in range(self.n_parts(params)):
                parts.append(self.run_part(params, seed, part))
                if not parts[-1].ok:
                    break
            return self.combine(params, parts)
        try:
            raw = self._run(params, seed)
            ok, message = True, ""
        except NumericalFailure as failure:
            raw, ok, message = failure.outputs, False, str(failure)
        return self._checked(params, raw, ok, message)

    def n_parts(self, params: Any) -> int:
        """How many independent parts make the point of ``params`` (1 without ``parts``)."""
        return 1 if self.parts is None else int(getattr(params, self.parts))

    def run_part(self, params: Any, seed: Seed, part: int) -> Part:
        """Part ``part`` of the point; a numerical failure comes back as ``Part(ok=False)``."""
        try:
            return Part(True, {k: np.asarray(v) for k, v in self._run_part(params, seed, part).items()})
        except NumericalFailure as failure:
            return Part(False, {}, str(failure))

    def combine(self, params: Any, parts: list[Part]) -> Result:
        """The point from its parts (in part order): failed with the first failed part's message."""
        failed = next((p for p in parts if not p.ok), None)
        if failed is not None:
            return self._checked(params, {}, False, failed.message)
        if len(parts) != self.n_parts(params):
            raise RuntimeError(f"kernel '{self.name}' got {len(parts)} parts of {self.n_parts(params)}")
        try:
            raw, ok, message = self._combine(params, [p.values for p in parts]), True, ""
        except NumericalFailure as failure:
            raw, ok, message = failure.outputs, False, str(failure)
        return self._checked(params, raw, ok, message)

    def _checked(self, params: Any, raw: Mapping[str, np.ndarray], ok: bool, message: str) -> Result:
        """``raw`` checked against the declared schema; non-finite values fail the point."""
        schema = self.schema(params)
        outputs = {}
        for name, spec in schema.outputs.items():
            if name not in raw:
                if ok:
                    raise RuntimeError(f"kernel '{self.name}' did not return output {name!r}")
                continue
            value = np.asarray(raw[name], dtype=np.float64)
            if value.shape != schema.shape(name):
                raise RuntimeError(
                    f"kernel '{self.name}' returned {name!r} with shape {value.shape}, "
                    f"declared {schema.shape(name)} for dims {spec.dims}"
                )
            if ok and not spec.allow_nan and not np.all(np.isfinite(value)):
                ok, message = False, f"output {name!r} has non-finite values"
            outputs[name] = value
        extra = set(raw) - set(schema.outputs)
        if extra:
            raise RuntimeError(f"kernel '{self.name}' returned undeclared outputs {sorted(extra)}")
        return Result(ok=ok, outputs=outputs, message=message)

    def _run(self, params: Any, seed: Seed) -> Mapping[str, np.ndarray]:
        raise NotImplementedError

    def _run_part(self, params: Any, seed: Seed, part: int) -> Mapping[str, np.ndarray]:
        raise NotImplementedError

    def _combine(self, params: Any, parts: list[Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
        raise NotImplementedError


# -- coercion of user values (TOML gives ints for floats, lists for tuples) ---------


def coerce(name: str, value: Any, hint: Any) -> Any:
    """Coerce a user value to a type hint, or raise a ParameterError naming ``name``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(name, value, arg)
            except ParameterError as exc:
                errors.append(str(exc))
        raise ParameterError(errors[0] if len(errors) == 1 else f"{name}: got {value!r}, expected {hint}.")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ParameterError(f"{name}: expected one of {choices}, got {value!r}.")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
            raise ParameterError(f"{name}: expected a list, got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(args) != len(value):
            raise ParameterError(f"{name}: expected a list of {len(args)} values, got {value!r}.")
        return tuple(coerce(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise ParameterError(f"{name}: expected true or false, got {value!r}.")
    if hint is int:
        if isinstance(value, (bool, np.bool_)):
            raise ParameterError(f"{name}: expected an integer, got {value!r}.")
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise ParameterError(f"{name}: expected an integer, got {value!r}.")
    if hint is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise ParameterError(f"{name}: expected a number, got {value!r}.")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            digits = len(str(abs(value)))
            raise ParameterError(
                f"{name}: expected a finite number, got an integer of {digits} digits."
            ) from None
        if not math.isfinite(value):
            raise ParameterError(f"{name}: expected a finite number, got {value!r}.")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParameterError(f"{name}: expected a string, got {value!r}.")
        return value
    return value


def check(condition: bool, name: str, message: str) -> None:
    """Raise a ParameterError ``"{name}: {message}"`` unless ``condition`` holds."""
    if not condition:
        raise ParameterError(f"{name}: {message}")


__all__ = [
    "Dim",
    "Kernel",
    "NumericalFailure",
    "Output",
    "ParameterError",
    "Result",
    "Schema",
    "Seed",
    "check",
    "coerce",
    "field",
    "rng",
]


@functools.cache
def _type_hints(params_class: type) -> dict[str, Any]:
    """The resolved annotations of a Params class, once: resolving them costs ~0.5 ms a call."""
    return typing.get_type_hints(params_class)
