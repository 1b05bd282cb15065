"""Kernel lookup by name: one line per built-in kernel, plus entry points.

Third-party kernels register through the entry-point group ``sweeper.kernels``
(``name = "package.module:KernelClass"``) or, within one process, with
:func:`register`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from kernels.base import Kernel

ENTRY_POINT_GROUP = "sweeper.kernels"

# name -> "module:Class"; imported lazily so one broken kernel does not hide the others.
BUILTIN: dict[str, str] = {
    "dmft": "kernels.singlelayer.dmft:DMFTKernel",
    "sgd_multipass": "kernels.singlelayer.sgd_multipass:SGDMultipassKernel",
    "ode": "kernels.twolayer.ode:ODEKernel",
    "meanfield": "kernels.twolayer.meanfield:MeanFieldKernel",
    "sgd_online": "kernels.twolayer.sgd_online:SGDOnlineKernel",
    "amp": "kernels.singlelayer.amp:AMPKernel",
    "gamp": "kernels.singlelayer.amp:GAMPKernel",
}

# Names that were kernels once: looking one up says what replaced it.
RETIRED: dict[str, str] = {
    "sgd": "the `sgd` kernel was split in two: use `sgd_multipass` (a single-layer model on a "
    'fixed data set, the counterpart of `dmft`; was mode = "multipass") or `sgd_online` '
    "(one-pass SGD of a two-layer network, the counterpart of `ode` and `meanfield`; was "
    'mode = "online"), and drop `mode`.',
}

_registered: dict[str, type[Kernel]] = {}


class UnknownKernelError(LookupError):
    """No kernel is registered under the requested name."""


def register(kernel: type[Kernel]) -> type[Kernel]:
    """Register a kernel class under its ``name`` (usable as a decorator)."""
    _registered[kernel.name] = kernel
    return kernel


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Sorted names of every kernel that can be looked up."""
    return sorted({*BUILTIN, *_entry_points(), *_registered})


def get_kernel(name: str) -> type[Kernel]:
    """The kernel class registered under ``name``."""
    if name in _registered:
        return _registered[name]
    target = BUILTIN.get(name) or _entry_points().get(name)
    if target is None and name in RETIRED:
        raise UnknownKernelError(f"Unknown kernel {name!r}: {RETIRED[name]}")
    if target is None:
        known = ", ".join(repr(k) for k in available())
        raise UnknownKernelError(f"Unknown kernel {name!r}. Known kernels: {known}.")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
