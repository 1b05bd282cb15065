"""Parameters shared by the `amp` (state evolution) and `gamp` (finite d) kernels.

The names are those of :class:`kernels.singlelayer.model.SingleLayerParams` where they mean
the same thing (``alpha``, ``teacher``, ``noise``, ``m0``); the training parameters of that
class (loss, learning rate, time grid, ...) have no meaning for Bayes-optimal inference, so
this family inherits none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kernels.base import check
from kernels.singlelayer.amp.priors import RHO

MAX_ITERATIONS = 10**6


@dataclass(frozen=True, kw_only=True)
class GLMInferenceParams:
    """Bayes-optimal inference of a teacher-student GLM from ``n = alpha d`` samples.

    Parameters
    ----------
    alpha
        Samples per dimension, ``n / d``.
    teacher
        Output channel: ``linear`` (``y = z + sqrt(noise) xi``), ``sign`` (perceptron,
        ``y = sign(z + sqrt(noise) xi)``) or ``abs`` (phase retrieval, ``y = |z|``, noiseless).
    prior
        Prior of the teacher's weights: ``gaussian`` (``N(0, 1)``) or ``rademacher`` (±1).
    noise
        Label-noise variance ``Delta`` (``linear`` and ``sign``; ``abs`` needs 0).
    m0
        Overlap ``m = a.w*/d`` of the start of the recorded iteration path (``a`` with
        ``|a|^2/d = m0`` too: the Bayes-consistent start); 0 is the uninformative start.
    iterations
        Number of iterations recorded (the ``iteration`` dim is ``0..iterations``).
    """

    alpha: float = 2.0
    teacher: Literal["linear", "sign", "abs"] = "sign"
    prior: Literal["gaussian", "rademacher"] = "gaussian"
    noise: float = 0.0
    m0: float = 0.01
    iterations: int = 30

    def __post_init__(self) -> None:
        check(self.alpha > 0, "alpha", f"must be positive, got {self.alpha!r}.")
        check(self.noise >= 0, "noise", f"must be >= 0 (a variance), got {self.noise!r}.")
        check(
            self.teacher != "abs" or self.noise == 0,
            "noise",
            f'`teacher = "abs"` is noiseless here (its noisy Z_out has no closed form), got {self.noise!r}.',
        )
        check(0 <= self.m0 < RHO, "m0", f"must be in [0, {RHO:g}) (the prior's E w^2), got {self.m0!r}.")
        check(
            1 <= self.iterations <= MAX_ITERATIONS,
            "iterations",
            f"must be in [1, {MAX_ITERATIONS}], got {self.iterations!r}.",
        )
