"""Dims and outputs shared by the `amp` and `gamp` kernels (docs/amp.md §1).

Declared once here and picked by both kernels, so that a state-evolution point and a
finite-d GAMP point line up name by name (`sweeper compare amp gamp`).
"""

from __future__ import annotations

import numpy as np

from kernels.schema import Dim, Output

DIMS = {
    "iteration": Dim(
        "iteration",
        lambda p: np.arange(p.iterations + 1),
        description="0 is the start (overlap m0); t is after t GAMP updates / SE steps",
    ),
    "start": Dim(
        "start of the fixed-point search",
        lambda p: np.array(["uninformed", "informed"]),
        description="uninformed: m = 1e-6 rho (AMP's fixed point); informed: m = rho (1 - 1e-8)",
    ),
}

OUTPUTS = {
    "m": Output(
        ("iteration",), "teacher overlap m = a.w*/d", description="a: GAMP's posterior-mean estimate"
    ),
    "q": Output(
        ("iteration",),
        "self overlap q = |a|^2/d",
        description="equal to m in state evolution (Nishimori identity of Bayes-optimal inference)",
    ),
    "mse": Output(("iteration",), "mean-square error |a - w*|^2/d", description="rho - m in state evolution"),
}
