"""A grid's fingerprint: what determines its stored numbers, a digest of it, and what changed.

:func:`components` gathers, as plain JSON data, everything that fixes the numbers
a grid stores; :func:`fingerprint` hashes it (equal fingerprints, interchangeable
results); :func:`changes_from` names what differs between a store's recorded
components and a new grid's, as "field old -> new", for the refusal to resume.
:class:`~sweeper.spec.GridSpec` delegates to these; they take plain data, not a spec.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sweeper.axes import Axis, show

AXIS_IN_FULL = 64  # longer axes are recorded by length, ends and digest (the coords hold them)
MAX_CHANGES = 6  # differences named in a refusal


def components(
    *,
    kernel: str,
    kernel_version: str,
    params: Any,
    swept: set[str],
    axes: Sequence[Axis],
    cases: Sequence[Mapping[str, Any]],
    grid_seed: int,
    outputs: Sequence[str],
) -> dict[str, Any]:
    """Everything that determines the stored numbers, as plain JSON data.

    The kernel's name and version; every parameter the grid does not sweep, as
    the kernel resolved it (``params``, the first point's: defaults included, so a
    default that changes between two submits is noticed); each axis (name and
    coerced values, in order; a long axis as its length, ends and a digest); the
    cases; the grid seed; and which outputs are stored (they fix the store's
    variables: resuming with another selection would leave NaN in an "ok" point or
    drop a requested output).

    Left out: the seeds (a store may grow them, checked apart), the name, the
    description and the other ``[run]`` options (where or how fast a grid runs
    does not change a number).
    """
    return canonical(
        {
            "kernel": kernel,
            "kernel_version": kernel_version,
            "params": {
                f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name not in swept
            },
            "axes": [[a.name, _axis_record(a.values)] for a in axes],
            "cases": [dict(c) for c in cases],
            "grid_seed": grid_seed,
            "outputs": sorted(outputs),
        }
    )


def fingerprint(components: Mapping[str, Any]) -> str:
    """A short hash of :func:`components`: equal fingerprints, interchangeable results."""
    return _digest(components)[:16]


def with_new_defaults(
    old: Mapping[str, Any], new: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """``old`` (stored components) completed with the parameters its kernel gained since, at their defaults.

    The version rule (kernels/base.py, item 8) lets a kernel gain a parameter without a
    version bump only if the parameter's default gives the numbers it gave before. So, at
    the same kernel and version, a record without a parameter is the record with it at its
    ``defaults`` value: a store made before the parameter existed resumes and grows under a
    grid that leaves it at its default (and is refused under one that sets another value).
    """
    old = dict(old)
    if old.get("kernel") != new["kernel"] or old.get("kernel_version") != new["kernel_version"]:
        return old
    stored = old.get("params", {})
    gained = {
        k: v
        for k, v in new["params"].items()
        if k not in stored and k in defaults and canonical(defaults[k]) == v
    }
    if gained:
        old["params"] = {**stored, **gained}
    return old


def same_frame(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Do ``old`` and ``new`` differ at most in the values of their axes and cases?

    Same kernel and version, parameters, grid seed and outputs; the same axes in the
    same order; cases in both or neither, setting the same keys. Such a grid may grow
    a store (:mod:`sweeper.growth` checks that no stored value is dropped or moved).
    """
    return _frame(old) == _frame(new)


def _frame(components: Mapping[str, Any]) -> dict[str, Any]:
    cases = components.get("cases", [])
    return {
        **components,
        "axes": [name for name, _ in components.get("axes", [])],
        "cases": sorted(cases[0]) if cases else None,
    }


def changes_from(
    old: Mapping[str, Any], new: Mapping[str, Any], old_text: str, new_set: set[str]
) -> list[str]:
    """What differs between stored components ``old`` and ``new``, as "field old -> new".

    ``old_text`` is the stored grid text and ``new_set`` the ``[params]`` keys the new
    grid file sets: a parameter neither grid file sets is reported as a default that changed.
    """
    return _changes(old, new, _params_set(old_text), new_set)


def canonical(value: Any) -> Any:
    """Plain JSON data: tuples as lists, numpy scalars as Python, -0.0 as 0.0."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [canonical(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value + 0.0  # -0.0 -> 0.0: the same number, the same fingerprint
    return value


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _axis_record(values: tuple[Any, ...]) -> Any:
    values = canonical(values)
    if len(values) <= AXIS_IN_FULL:
        return values
    return {"n": len(values), "first": values[0], "last": values[-1], "sha256": _digest(values)}


def _params_set(text: str) -> set[str]:
    """The ``[params]`` keys a stored grid text sets (empty if it cannot be read)."""
    try:
        params = tomllib.loads(text).get("params", {})
    except (tomllib.TOMLDecodeError, RecursionError):
        return set()
    return set(params) if isinstance(params, dict) else set()


def _changes(
    old: Mapping[str, Any], new: Mapping[str, Any], old_set: set[str], new_set: set[str]
) -> list[str]:
    out = []
    if old.get("kernel") != new["kernel"]:
        out.append(f"kernel {_show(old.get('kernel'))} -> {_show(new['kernel'])}")
    elif old.get("kernel_version") != new["kernel_version"]:
        out.append(
            f"kernel {_show(new['kernel'])} version {old.get('kernel_version')} -> {new['kernel_version']}"
        )
    old_params, new_params = old.get("params", {}), new["params"]
    for key in sorted(set(old_params) | set(new_params), key=lambda k: (k not in new_params, k)):
        a, b = old_params.get(key, _ABSENT), new_params.get(key, _ABSENT)
        if a == b:
            continue
        note = " (a default changed)" if key not in old_set | new_set and _ABSENT not in (a, b) else ""
        out.append(f"params.{key} {_show(a, old, key)} -> {_show(b, new, key)}{note}")
    old_axes, new_axes = old.get("axes", []), new["axes"]
    if [n for n, _ in old_axes] != [n for n, _ in new_axes]:
        out.append(f"axes ({', '.join(n for n, _ in old_axes)}) -> ({', '.join(n for n, _ in new_axes)})")
    else:
        out.extend(_axis_change(n, a, b) for (n, a), (_, b) in zip(old_axes, new_axes) if a != b)
    old_cases, new_cases = old.get("cases", []), new["cases"]
    if len(old_cases) != len(new_cases):
        out.append(f"cases {len(old_cases)} -> {len(new_cases)}")
    else:
        for i, (a, b) in enumerate(zip(old_cases, new_cases)):
            out.extend(
                f"cases[{i}].{k} {_show(a.get(k, _ABSENT))} -> {_show(b.get(k, _ABSENT))}"
                for k in sorted(set(a) | set(b))
                if a.get(k, _ABSENT) != b.get(k, _ABSENT)
            )
    for key in ("grid_seed", "outputs"):
        if old.get(key) != new[key]:
            out.append(f"{key} {_show(old.get(key, _ABSENT))} -> {_show(new[key])}")
    if len(out) > MAX_CHANGES:
        out = out[:MAX_CHANGES] + [f"and {len(out) - MAX_CHANGES} more"]
    return out


def _axis_change(name: str, old: Any, new: Any) -> str:
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
        return f"sweep.{name}[{i}] {_show(old[i])} -> {_show(new[i])}"
    n_old = len(old) if isinstance(old, list) else old["n"]
    n_new = len(new) if isinstance(new, list) else new["n"]
    if n_old != n_new:
        return f"sweep.{name} {n_old} values -> {n_new} values"
    return f"sweep.{name} values differ"


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _show(value: Any, components: Mapping[str, Any] | None = None, key: str = "") -> str:
    """A value in a message: its repr, shortened; a swept parameter as "(swept)"."""
    if value is _ABSENT and components is not None:
        swept = {n for n, _ in components.get("axes", [])} | {
            k for c in components.get("cases", []) for k in c
        }
        if key in swept:
            return "(swept)"
    return show(value)
