"""Bayes-optimal inference in teacher-student GLMs: state evolution (`amp`) and finite-d GAMP (`gamp`).

``params`` and ``schema`` hold what both kernels share; ``priors`` and ``channels`` the scalar
denoisers and their SE integrals (``abs_channel``: phase retrieval's, tabulated;
``integrands`` and ``quadrature``: the adaptive Gauss-Kronrod quadrature);
``state_evolution`` the SE map, its fixed points and the free entropy; ``thresholds`` the
phase transitions in ``alpha``; ``kernel`` and ``gamp`` the two kernels. Theory: ``docs/amp.md``.
"""

from kernels.singlelayer.amp.gamp import GAMPKernel, GAMPParams
from kernels.singlelayer.amp.kernel import AMPKernel, AMPParams

__all__ = ["AMPKernel", "AMPParams", "GAMPKernel", "GAMPParams"]
