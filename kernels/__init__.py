"""Kernels of sweeper: pure computations, usable from a notebook without Ray.

>>> from kernels import get_kernel
>>> ode = get_kernel("ode")()
>>> result = ode.run(ode.make_params(K=2, M=2, lr=0.5), seed=0)
"""

from kernels.base import Kernel, NumericalFailure, Output, ParameterError, Result, rng
from kernels.registry import available, get_kernel, register

__all__ = [
    "Kernel",
    "NumericalFailure",
    "Output",
    "ParameterError",
    "Result",
    "available",
    "get_kernel",
    "register",
    "rng",
]
