"""The `sgd_online` kernel: finite-d one-pass SGD, the ground truth of `ode` and `meanfield`.

``kernel`` holds the parameters and the kernel; ``simulation`` the simulator;
``normals`` its in-loop normal random numbers.
"""

from kernels.twolayer.sgd_online.kernel import OnlineParams, SGDOnlineKernel

__all__ = ["OnlineParams", "SGDOnlineKernel"]
