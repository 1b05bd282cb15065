"""The `ode` kernel: overlap ODEs of one-pass SGD in two-layer networks (``docs/ode.md``)."""

from kernels.twolayer.ode.kernel import ODEKernel, ODEParams

__all__ = ["ODEKernel", "ODEParams"]
