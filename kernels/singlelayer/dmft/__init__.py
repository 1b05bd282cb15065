"""The `dmft` kernel: discrete-time DMFT of GD / SGD / persistent SGD (``docs/dmft.md``).

``params`` holds the parameters; ``kernel`` the kernel (schema, blocks, iterations);
``causal_pass`` the loop over time steps of one block of trajectories; ``numerics`` its
numba core (noise factor, trajectory step, adjoint response, weight side); ``process`` the
per-step evaluation of the effective process (losses, sample means, selection chain).
"""

from kernels.singlelayer.dmft.kernel import DMFTKernel
from kernels.singlelayer.dmft.params import DMFTParams

__all__ = ["DMFTKernel", "DMFTParams"]
