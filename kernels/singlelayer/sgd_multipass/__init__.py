"""The `sgd_multipass` kernel: finite-d multi-pass SGD, the ground truth of `dmft`.

``kernel`` holds the parameters and the kernel; ``simulation`` the simulator.
"""

from kernels.singlelayer.sgd_multipass.kernel import MultipassParams, SGDMultipassKernel

__all__ = ["MultipassParams", "SGDMultipassKernel"]
