"""Run BLAS single-threaded while a DMFT block is solved.

The solver calls many small BLAS products per time step (Gram-Schmidt of the
noise rows, the blocked adjoint response). Multi-threaded OpenBLAS spins its
worker threads between such calls; on a shared machine, or inside a Ray actor
that owns one CPU, that spinning competes with everything else and was
measured to make a (48 x 150) @ (150 x 1000) product 30x slower (1 GF/s
instead of 35 GF/s). One thread per kernel instance is also what the
scheduler's one-actor-per-CPU layout expects.

numpy's bundled OpenBLAS exposes ``*_set_num_threads`` through its shared
library; we find it in the process maps and call it via ctypes. If it cannot be
found (another BLAS, another platform) the context manager does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
from collections.abc import Iterator

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


def _openblas() -> tuple | None:
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", fh.read())))
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            return setter, getter
    return None


_HANDLES: list = []


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit OpenBLAS to one thread inside the block, restoring the previous count after."""
    if not _HANDLES:
        _HANDLES.append(_openblas())
    handles = _HANDLES[0]
    if handles is None:
        yield
        return
    setter, getter = handles
    previous = int(getter())
    setter(1)
    try:
        yield
    finally:
        setter(previous)
