"""Single-layer models trained on a fixed data set: shared parameters and data models.

The `sgd_multipass` kernel (finite-N simulation) and the `dmft`
kernel (its d -> infinity theory) take the same parameter names and use the same
definitions from this module: :class:`SingleLayerParams`, the label rules, the
pointwise loss of each data model (:func:`pointwise`), the per-sample error
(:func:`sample_error`), the closed-form test error (:func:`test_error`) and the
sample-selection chain (:func:`selection_probabilities`). Everything follows
docs/singlelayer.md §1.

Conventions
-----------
- ``n = alpha d`` samples, preactivation ``r = w . x / sqrt(d)``; the training
  loss is the *sum* ``sum_mu s_hat_mu l(y_mu, r_mu) + ridge |w|^2 / 2``.
- Overlaps with the special direction ``v`` (teacher ``w*`` for the GLM, cluster
  centre ``v*`` for the mixtures), normalised so that ``|v|^2 = d`` exactly:
  ``m = w . v / d``, ``Q = |w|^2 / d``. The teacher field ``u = x . v / sqrt(d)``.
- Data models (docs/singlelayer.md §2):

  ``glm``
      ``x ~ N(0, I_d)``, ``u ~ N(0, 1)``, ``y = phi(u)`` with ``phi`` given by
      ``teacher``: ``linear`` (``y = u``), ``sign``, ``abs`` (phase retrieval).
      Label noise of variance ``noise``: added to ``y`` for ``linear`` and
      ``abs``; for ``sign`` it goes inside the sign, ``y = sign(u + sqrt(noise) xi)``,
      so labels stay ``+-1`` (logistic and hinge need binary labels).
      Orthogonal variance ``sigma^2 = 1``.
  ``mixture2``
      ``x = c v / sqrt(d) + sqrt(noise) z``, ``c = +-1`` with probability 1/2,
      ``y = c``; so ``u = c + sqrt(noise) g`` and ``sigma^2 = noise``.
  ``mixture3``
      ``c in {-1, 0, +1}`` with weights ``((1-rho)/2, rho, (1-rho)/2)``; outer
      clusters labelled ``+1``, the centre ``-1``. A linear score cannot
      separate them, so the loss acts on the quadratic score
      ``h = r^2 - MIXTURE3_THRESHOLD`` (``l(y, h(r))``, chain rule in
      :func:`pointwise`) and the prediction is ``sign(h)``. **This output map is
      our choice**: the classifier of Mignacco et al. 2020's three-cluster
      model is unverified (docs/singlelayer.md §2 [M]).

- Test error (:func:`test_error`), from ``(m, Q)`` with
  ``r_test = m u + sqrt(sigma^2 (Q - m^2)) Z``, noiseless labels, the label-noise
  floor excluded:

  - ``glm/linear``: ``(1 - 2 m + Q) / 2`` (mean-square error / 2),
  - ``glm/sign``: ``arccos(m / sqrt(Q)) / pi``,
  - ``glm/abs``: ``E[(y^2 - r^2)^2] / 4`` (docs/dmft.md §2; ``= 1 - m^2`` on the sphere Q = 1),
  - ``mixture2``: ``erfc(m / sqrt(2 noise Q)) / 2``,
  - ``mixture3``: misclassification probability of ``sign(h)``.

  ``train_error`` is the training-set mean of the same per-sample quantity
  (:func:`sample_error`: squared error / 2, ``(y^2 - r^2)^2 / 4`` or 0-1
  error), with the training labels (noise included).
- Selection chain (docs/singlelayer.md §4): ``s_mu(t) in {0, 1}``; ``P(0 -> 1) = lr / tau``,
  ``P(1 -> 0) = (1 - b) lr / (b tau)``, ``s(0) ~ Bern(b)``. ``sgd`` is
  ``tau = lr / b`` (fresh Bernoulli(b) batches each step), ``gd`` is ``s = 1``.
  ``s_hat = s / b`` if ``batch_normalise`` else ``s``.
- Spherical constraint: ``Q(t) = q0`` at all times, either by projection after
  each step (``projection``) or with the Lagrange multiplier that keeps
  ``dQ/dt = 0`` in continuous time (``lagrange``; docs/dmft.md §2.3 "Norm and
  constraint"): ``ridge + nu = (temperature - sum_mu s_hat l' r / d) / Q``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit
from scipy.special import erfc

from kernels.base import check
from kernels.singlelayer.losses import LOSS_CODES, loss_derivatives
from kernels.timegrid import TimeGridParams

GLM, MIXTURE2, MIXTURE3 = 0, 1, 2
MODEL_CODES: dict[str, int] = {"glm": GLM, "mixture2": MIXTURE2, "mixture3": MIXTURE3}

LINEAR, SIGN, ABS = 0, 1, 2
TEACHER_CODES: dict[str, int] = {"linear": LINEAR, "sign": SIGN, "abs": ABS}

# Score offset of the three-cluster model: h = r^2 - threshold (see module docstring).
MIXTURE3_THRESHOLD = 0.5

# per-sample error kinds returned by `error_kind`
ERR_SQUARE, ERR_ZERO_ONE, ERR_PHASE = 0, 1, 2


# Q = |w|^2/d beyond this has no meaningful dynamics left: a point is reported as diverged
# (by the simulation and by the theory alike)
DIVERGED = 1e12


@dataclass(frozen=True, kw_only=True)
class SingleLayerParams(TimeGridParams):
    """Shared parameters of single-layer learning on ``n = alpha d`` samples.

    Parameters
    ----------
    alpha
        Samples per dimension, ``n / d``.
    model
        Data model: ``glm`` (teacher-student), ``mixture2`` or ``mixture3``
        (Gaussian mixtures of Mignacco et al. 2020).
    teacher
        Teacher nonlinearity of the ``glm``: ``linear``, ``sign``, ``abs``.
        Ignored by the mixtures.
    loss
        Pointwise loss (:mod:`kernels.singlelayer.losses`).
    loss_scale
        Prefactor of the ``phase`` loss ``loss_scale (y^2 - r^2)^2``.
    ridge
        Ridge penalty ``lambda |w|^2 / 2``.
    spherical
        ``none``; ``projection`` onto ``Q = q0`` after each step; ``lagrange``:
        multiplier keeping ``Q`` constant in continuous time.
    algorithm
        ``gd`` (all samples every step), ``sgd`` (i.i.d. Bernoulli(b) batches)
        or ``psgd`` (persistent chain with persistence time ``tau``).
    b
        Mean fraction of samples in the batch. ``gd`` ignores it (b = 1), so a
        grid can sweep ``algorithm`` with ``b`` fixed.
    tau
        Persistence time of ``psgd`` (time units of ``t = step lr``); ignored by
        ``gd`` and ``sgd`` (which is ``tau = lr / b``).
    batch_normalise
        Use ``s_hat = s / b`` (True) or ``s`` (False) as the sample weight.
    temperature
        Langevin temperature: ``w += sqrt(2 temperature lr) zeta`` per step.
    lr
        Learning rate ``eta``; time is ``t = step * lr``.
    init
        ``warm``: ``m(0) = m0`` exactly; ``random``: ``w`` uniformly random
        (``m(0) = O(d^-1/2)``).
    m0
        Initial overlap of the warm start.
    q0
        Initial self-overlap ``Q(0)`` (both starts), and the sphere if
        ``spherical != "none"``. docs/singlelayer.md §9.1's warm start ``w0 = m0 w* + z``
        with ``|z|^2 = d`` is ``q0 = 1 + m0^2``.
    noise
        ``glm``: label-noise variance; mixtures: cluster variance ``Delta``.
    rho
        ``mixture3``: weight of the centre cluster (label -1); each outer
        cluster has ``(1 - rho) / 2``.
    """

    alpha: float = 2.0
    model: Literal["glm", "mixture2", "mixture3"] = "glm"
    teacher: Literal["linear", "sign", "abs"] = "linear"
    loss: Literal["square", "logistic", "hinge", "logcosh", "phase"] = "square"
    loss_scale: float = 1.0
    ridge: float = 0.0
    spherical: Literal["none", "projection", "lagrange"] = "none"
    algorithm: Literal["gd", "sgd", "psgd"] = "gd"
    b: float = 1.0
    tau: float = 1.0
    batch_normalise: bool = True
    temperature: float = 0.0
    lr: float = 0.1
    init: Literal["random", "warm"] = "warm"
    m0: float = 0.2
    q0: float = 1.04
    noise: float = 0.0
    rho: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha > 0, "alpha", f"must be positive, got {self.alpha!r}.")
        check(0 < self.b <= 1, "b", f"must be in (0, 1], got {self.b!r}.")
        check(self.lr > 0, "lr", f"must be positive, got {self.lr!r}.")
        check(self.ridge >= 0, "ridge", f"must be >= 0, got {self.ridge!r}.")
        check(self.temperature >= 0, "temperature", f"must be >= 0, got {self.temperature!r}.")
        check(self.noise >= 0, "noise", f"must be >= 0 (a variance), got {self.noise!r}.")
        check(self.q0 > 0, "q0", f"must be positive, got {self.q0!r}.")
        check(self.loss_scale > 0, "loss_scale", f"must be positive, got {self.loss_scale!r}.")
        if self.init == "warm":
            check(
                self.m0**2 <= self.q0,
                "m0",
                f"a warm start needs m0^2 <= q0, got m0={self.m0!r}, q0={self.q0!r}.",
            )
        if self.model != "glm":
            check(self.noise > 0, "noise", f"the cluster variance of `{self.model}` must be > 0.")
        if self.model == "mixture3":
            check(0 < self.rho < 1, "rho", f"must be in (0, 1) for `mixture3`, got {self.rho!r}.")
        if self.loss in ("logistic", "hinge"):
            check(
                self.model != "glm" or self.teacher == "sign",
                "loss",
                f'`{self.loss}` needs labels +-1: use `teacher = "sign"` or a mixture model.',
            )
        if self.algorithm == "psgd":
            name, step = self.chain_step()
            p01, p10 = chain_probabilities(self.b, self.tau, step)
            check(self.tau > 0, "tau", f"must be positive, got {self.tau!r}.")
            check(
                p01 <= 1 and p10 <= 1,
                "tau",
                f"the selection chain needs {name}/tau <= 1 and {name} (1-b)/(b tau) <= 1 "
                f"(docs/singlelayer.md §4.2), got {name}={step!r}, tau={self.tau!r}, b={self.b!r}.",
            )

    def chain_step(self) -> tuple[str, float]:
        """The name and value of the step the selection chain moves by: ``lr``."""
        return "lr", self.lr


def chain_probabilities(b: float, tau: float, step: float) -> tuple[float, float]:
    """Per-step ``(P(0 -> 1), P(1 -> 0))`` of the selection chain (``docs/singlelayer.md §4.2``)."""
    if tau <= 0:
        return math.inf, math.inf
    return step / tau, (1.0 - b) * step / (b * tau)


def selection_probabilities(p: SingleLayerParams) -> tuple[float, float]:
    """Per-step transition probabilities ``(P(0 -> 1), P(1 -> 0))`` of the chain.

    ``gd`` gives ``(1, 0)`` (always selected); ``sgd`` gives ``(b, 1 - b)``,
    i.e. ``tau = lr / b``: the next state is Bernoulli(b) whatever the current one.
    """
    if p.algorithm == "gd":
        return 1.0, 0.0
    if p.algorithm == "sgd":
        return p.b, 1.0 - p.b
    return chain_probabilities(p.b, p.tau, p.lr)


def batch_fraction(p: SingleLayerParams) -> float:
    """The effective ``b``: 1 for ``gd`` whatever ``b`` says, else ``b``."""
    return 1.0 if p.algorithm == "gd" else p.b


def sample_weight(p: SingleLayerParams) -> float:
    """``s_hat / s``: ``1 / b`` with batch normalisation, else 1 (always 1 for ``gd``)."""
    return 1.0 / batch_fraction(p) if p.batch_normalise else 1.0


def orthogonal_variance(p: SingleLayerParams) -> float:
    """``sigma^2``: per-coordinate input variance orthogonal to ``v`` (docs/dmft.md §2)."""
    return 1.0 if p.model == "glm" else p.noise


def error_kind(p: SingleLayerParams) -> int:
    """Which per-sample error :func:`sample_error` computes for this data model."""
    if p.model != "glm" or p.teacher == "sign":
        return ERR_ZERO_ONE
    return ERR_PHASE if p.teacher == "abs" else ERR_SQUARE


# -- labels -----------------------------------------------------------------------------------


def draw_clusters(p: SingleLayerParams, gen: np.random.Generator, n: int) -> np.ndarray:
    """Cluster index ``c`` of ``n`` mixture samples (``+-1``, or ``-1, 0, +1``)."""
    if p.model == "mixture2":
        return np.where(gen.random(n) < 0.5, -1.0, 1.0)
    uniform = gen.random(n)
    outer = np.where(uniform < (1.0 - p.rho) / 2, -1.0, 1.0)
    return np.where(uniform < 1.0 - p.rho, outer, 0.0)


def labels(p: SingleLayerParams, u: np.ndarray, c: np.ndarray | None, gen: np.random.Generator) -> np.ndarray:
    """Training labels from the teacher field ``u`` (GLM) or the clusters ``c`` (mixtures).

    Label noise draws ``len(u)`` normals from ``gen`` only when ``noise > 0``.
    """
    if p.model == "mixture2":
        return np.asarray(c, dtype=np.float64).copy()
    if p.model == "mixture3":
        return np.where(np.asarray(c) == 0, -1.0, 1.0)
    u = np.asarray(u, dtype=np.float64)
    if p.teacher == "sign":
        field = u + math.sqrt(p.noise) * gen.standard_normal(len(u)) if p.noise > 0 else u
        return np.where(field >= 0, 1.0, -1.0)
    y = u.copy() if p.teacher == "linear" else np.abs(u)
    if p.noise > 0:
        y += math.sqrt(p.noise) * gen.standard_normal(len(u))
    return y


def draw_effective(p: SingleLayerParams, gen: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws of ``(u, y)`` for the DMFT effective process (docs/dmft.md §2).

    GLM: ``u ~ N(0, 1)``; mixtures: ``u = c + sqrt(noise) g``.
    """
    if p.model == "glm":
        u = gen.standard_normal(n)
        return u, labels(p, u, None, gen)
    c = draw_clusters(p, gen, n)
    u = c + math.sqrt(p.noise) * gen.standard_normal(n)
    return u, labels(p, u, c, gen)


# -- pointwise loss and error of a data model (numba, callable from other @njit code) ----------


@njit(cache=True)
def pointwise(loss: int, model: int, y: float, r: float, scale: float) -> tuple[float, float, float]:
    """``(l, dl/dr, d2l/dr2)`` of the data model's loss at preactivation ``r``.

    For ``glm`` and ``mixture2`` this is :func:`kernels.singlelayer.losses.loss_derivatives`
    at ``(y, r)``; for ``mixture3`` the loss acts on the score
    ``h = r^2 - MIXTURE3_THRESHOLD`` and the derivatives include the chain rule.
    """
    if model != MIXTURE3:
        return loss_derivatives(loss, y, r, scale)
    ell, d1, d2 = loss_derivatives(loss, y, r * r - MIXTURE3_THRESHOLD, scale)
    return ell, 2.0 * r * d1, 4.0 * r * r * d2 + 2.0 * d1


@njit(cache=True)
def sample_error(kind: int, model: int, y: float, r: float) -> float:
    """Per-sample error: squared error / 2, ``(y^2 - r^2)^2 / 4`` or 0-1 error."""
    if kind == ERR_SQUARE:
        return 0.5 * (y - r) ** 2
    if kind == ERR_PHASE:
        diff = y * y - r * r
        return 0.25 * diff * diff
    score = r * r - MIXTURE3_THRESHOLD if model == MIXTURE3 else r
    predicted = 1.0 if score >= 0 else -1.0
    return 0.0 if predicted == y else 1.0


# -- population (test) error from the overlaps -------------------------------------------------


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * erfc(-x / math.sqrt(2.0))


def test_error(p: SingleLayerParams, m: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Generalisation error from the overlaps ``(m, Q)``; see the module docstring.

    Excludes the label-noise floor; uses the noiseless teacher.
    """
    m = np.asarray(m, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    s2 = np.maximum(Q - m**2, 0.0)
    if p.model == "glm":
        if p.teacher == "linear":
            return 0.5 * (1.0 - 2.0 * m + Q)
        if p.teacher == "sign":
            return np.arccos(np.clip(m / np.sqrt(np.maximum(Q, 1e-300)), -1.0, 1.0)) / np.pi
        a = 1.0 - m**2
        return 0.25 * (3.0 * a**2 + 4.0 * m**2 * s2 + 3.0 * s2**2 - 2.0 * a * s2)
    std = np.sqrt(np.maximum(p.noise * Q, 1e-300))
    if p.model == "mixture2":
        return 0.5 * erfc(m / (math.sqrt(2.0) * std))
    root = math.sqrt(MIXTURE3_THRESHOLD)
    # outer clusters (label +1): error if (+-m + std Z)^2 < threshold; symmetric in the sign
    outer = _norm_cdf((root - m) / std) - _norm_cdf((-root - m) / std)
    # centre (label -1): error if (std Z)^2 >= threshold
    centre = erfc(root / (math.sqrt(2.0) * std))
    return (1.0 - p.rho) * outer + p.rho * centre


test_error.__test__ = False  # not a pytest test despite the name


__all__ = [
    "ABS",
    "GLM",
    "LINEAR",
    "LOSS_CODES",
    "MIXTURE2",
    "MIXTURE3",
    "MIXTURE3_THRESHOLD",
    "MODEL_CODES",
    "SIGN",
    "SingleLayerParams",
    "batch_fraction",
    "TEACHER_CODES",
    "draw_clusters",
    "draw_effective",
    "error_kind",
    "labels",
    "orthogonal_variance",
    "pointwise",
    "sample_error",
    "sample_weight",
    "selection_probabilities",
    "test_error",
]
