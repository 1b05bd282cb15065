"""A test-only kernel with an analytic boundary: the unit circle, crossed with a known probability.

margin = x^2 + y^2 - 1 (+ width * N(0, 1) per seed). A point succeeds where the margin is
below 0; with ``width = 0`` that is inside the unit circle (in 1-D, at y = 0: x < 1), with
``width > 0`` with probability Phi(-(x^2 + y^2 - 1) / width), one half on the circle.
``trace`` walks linearly from 0 to the margin over three steps (its last value is the
margin), so reductions over a dim are tested too. ``x > fail_above`` fails the point.
"""

from dataclasses import dataclass

import numpy as np

from kernels.base import Dim, Kernel, NumericalFailure, Output, rng


@dataclass(frozen=True, kw_only=True)
class BoundaryParams:
    """Parameters of the boundary kernel.

    Parameters
    ----------
    x
        First coordinate.
    y
        Second coordinate.
    width
        Standard deviation of the noise on the margin (per seed).
    fail_above
        Points with x above this fail.
    """

    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    fail_above: float = 1e9


class Boundary(Kernel):
    """The unit circle as a boundary (tests only)."""

    name = "boundary"
    version = "1"
    Params = BoundaryParams
    shape_params = frozenset()
    example = {"x": 0.5}
    failing_example = {"x": 2.0, "fail_above": 1.0}

    dims = {"step": Dim("step", lambda p: np.arange(3))}
    outputs = {
        "margin": Output((), "margin x^2 + y^2 - 1"),
        "trace": Output(("step",), "margin, reached linearly"),
    }

    def _run(self, p, seed):
        if p.x > p.fail_above:
            raise NumericalFailure(f"x = {p.x} is above {p.fail_above}")
        margin = p.x**2 + p.y**2 - 1 + p.width * rng(seed, "noise").normal()
        return {"margin": np.float64(margin), "trace": np.linspace(0.0, 1.0, 3) * margin}
