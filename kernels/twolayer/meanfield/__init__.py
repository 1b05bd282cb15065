"""The `meanfield` kernel: mean-field particle flow of wide two-layer networks (``docs/meanfield.md``).

``kernel`` holds the parameters, the schema and the time loop; ``particles`` the
pair sums of the particle velocity; ``reduced`` the velocity of the reduced
``(m, q_perp)`` dynamics.
"""

from kernels.twolayer.meanfield.kernel import MeanFieldKernel, MeanFieldParams

__all__ = ["MeanFieldKernel", "MeanFieldParams"]
