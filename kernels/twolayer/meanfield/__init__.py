"""The `meanfield` kernel: mean-field particle flow of wide two-layer networks (``docs/meanfield.md``).

``params`` holds the parameters and the rates they set; ``kernel`` the kernel and its
schema; ``flow`` the time loop of both discretisations; ``particles`` the pair sums of the
particle velocity; ``reduced`` the velocity of the reduced ``(m, q_perp)`` dynamics.
"""

from kernels.twolayer.meanfield.kernel import MeanFieldKernel
from kernels.twolayer.meanfield.params import MeanFieldParams

__all__ = ["MeanFieldKernel", "MeanFieldParams"]
