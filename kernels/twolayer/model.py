"""Shared definitions of the two-layer teacher-student setting (`ode`, `sgd` online, `meanfield`).

Model (docs/twolayer.md §1, docs/ode.md §1): inputs ``x ~ N(0, I_d)``, teacher
``y = sum_n v*_n g(w*_n.x / sqrt d) + sqrt(noise) zeta`` with ``M`` units, student
``f(x) = sum_i v_i g(w_i.x / sqrt d)`` with ``K`` units, square loss ``(y - f)^2 / 2``, one
fresh sample per step. One SGD step (Goldt et al. 2019, ``nn2pp``) is::

    w_i <- (1 - weight_decay / steps_per_time) w_i + (lr_eff / sqrt d) v_i g'(lambda_i) e x
    v_i <- (1 - weight_decay / steps_per_time) v_i + (lr_v_eff / d) g(lambda_i) e

with ``e = y - f(x)``, ``lr_eff = lr`` without scalings and ``lr d^(-delta) K / d^kappa``
with them (:func:`learning_rates`), likewise ``lr_v_eff``; ``v`` decays only when trained.

Conventions
-----------
``committee = "saad_solla"``: ``v = v* = 1`` (Saad & Solla 1995; Goldt et al. 2019).
``committee = "mean"``: ``v = 1/K``, ``v* = 1/M`` (Veiga et al. 2022; Arnaboldi et al. 2023).

Time: ``t = steps / steps_per_time``. Without scalings (``kappa = delta = None``)
``steps_per_time = d`` (Goldt's ``t = mu / N``). With the (kappa, delta) scalings of Veiga et al.
(``p ~ d^kappa``, ``gamma = lr d^(-delta)``), ``steps_per_time = d^(1 + kappa + delta)`` when
``kappa + delta >= 0`` (green region and blue line) and ``d^(1 + 2 (kappa + delta))``
otherwise (orange, and red where the description breaks down), docs/twolayer.md §2.3.
``kappa`` selects the time unit and the region; the student width is the integer ``K``,
which stands for ``d^kappa`` in the learning rate (:func:`learning_rates`).

Weight decay is a rate per unit time, so it means the same in every time unit (without
scalings it is Goldt's ``wd / N`` per step).

The weights of both kernels come from :func:`draw_weights` so that an `ode` point and an
`sgd` point with the same seed start from the same overlaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kernels.base import Seed, check, rng
from kernels.timegrid import TimeGridParams
from kernels.twolayer.gaussian import ACTIVATION_CODES, risk_overlaps

# Region codes of the (kappa, delta) phase diagram (Veiga et al. 2022, docs/twolayer.md §2.3).
REGIONS = {"none": 0, "green": 1, "blue": 2, "orange": 3, "red": 4}
# kappa + delta within this of 0 is the blue line: grids built with linspace give -0.3 + 0.3
# = 5.6e-17, and such a point is meant to be on the line.
BLUE_TOLERANCE = 1e-9
# overlaps beyond this (or non-finite) have no meaningful dynamics left: a point is reported as
# diverged (the `ode` kernel's default `blowup`, and the `sgd_online` simulation's bound)
BLOWUP = 1e6


@dataclass(frozen=True, kw_only=True)
class TwoLayerParams(TimeGridParams):
    """Parameters shared by the two-layer kernels (`ode`, `sgd` online, `meanfield`).

    Parameters
    ----------
    d
        Input dimension (``N`` in Goldt, ``d`` in Veiga). Sets the initial overlaps of
        ``init = "random"``, the finite-d prefactors and the time unit.
    K, M
        Student and teacher hidden units (``p`` and ``k`` in Veiga). Shape parameters.
    activation
        ``g`` of both networks: ``erf`` (``erf(x/sqrt 2)``), ``relu`` or ``linear``.
    committee
        Second-layer convention: ``saad_solla`` (``v = v* = 1``) or ``mean``
        (``v = 1/K``, ``v* = 1/M``).
    lr
        First-layer learning rate ``eta``; ``gamma_0`` when the scalings are set
        (``gamma = lr d^(-delta) K / d^kappa``, see :func:`learning_rates`).
    lr_v
        Second-layer learning rate (same scaling); ``None`` means equal to ``lr``.
    train_second_layer
        Train ``v`` (the teacher's ``v*`` stays fixed).
    weight_decay
        L2 decay rate per unit time on ``w`` and ``v``.
    noise
        Label-noise variance ``Delta`` (Goldt's ``sigma^2``).
    kappa, delta
        Veiga et al. scalings ``p ~ d^kappa``, ``gamma = lr d^(-delta)``; ``None`` means no
        scaling (``0`` for the learning rate, time ``t = steps / d``). Set both or neither.
    init
        ``random``: student weights with i.i.d. ``N(0, init_scale^2)`` entries at dimension
        ``d``; ``small``: the symmetric small initialisation of Saad & Solla,
        ``Q = init_scale^2 I``, ``M`` of order ``init_scale / sqrt d``; ``explicit``: the
        overlaps ``Q0, M0, P0`` (and ``v0``).
    init_scale
        Standard deviation of the student's weight entries (``Q(0) ~ init_scale^2 I``).
    teacher
        ``orthogonal``: teacher rows orthogonal with ``|w*_n|^2 = d`` (``P = I`` exactly);
        ``gaussian``: i.i.d. ``N(0, 1)`` entries (``P ~ I``).
    Q0, M0, P0
        Explicit initial overlaps, as nested arrays (rows) or flattened row-major (``K*K``,
        ``K*M``, ``M*M`` values); ``P0 = None`` means the identity. Only with
        ``init = "explicit"``.
    v0
        Initial student second layer (``K`` values); ``None`` means the committee's value.
    """

    d: int = 1000
    K: int = 2
    M: int = 2
    activation: Literal["erf", "relu", "linear"] = "erf"
    committee: Literal["saad_solla", "mean"] = "saad_solla"
    lr: float = 0.5
    lr_v: float | None = None
    train_second_layer: bool = False
    weight_decay: float = 0.0
    noise: float = 0.0
    kappa: float | None = None
    delta: float | None = None
    init: Literal["random", "small", "explicit"] = "random"
    init_scale: float = 1.0
    teacher: Literal["orthogonal", "gaussian"] = "orthogonal"
    Q0: tuple[float, ...] | tuple[tuple[float, ...], ...] | None = None
    M0: tuple[float, ...] | tuple[tuple[float, ...], ...] | None = None
    P0: tuple[float, ...] | tuple[tuple[float, ...], ...] | None = None
    v0: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("Q0", "M0", "P0"):
            value = getattr(self, name)
            if value is not None and len(value) and isinstance(value[0], tuple):
                # TOML users write matrices as nested arrays; store them flat, row-major
                object.__setattr__(self, name, tuple(float(x) for row in value for x in row))
        check(self.d >= 1, "d", f"must be a positive integer, got {self.d!r}.")
        check(self.K >= 1, "K", f"must be a positive integer, got {self.K!r}.")
        check(self.M >= 1, "M", f"must be a positive integer, got {self.M!r}.")
        check(self.lr > 0, "lr", f"must be positive, got {self.lr!r}.")
        check(self.lr_v is None or self.lr_v >= 0, "lr_v", f"must be >= 0, got {self.lr_v!r}.")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay!r}.")
        check(self.noise >= 0, "noise", f"is a variance and must be >= 0, got {self.noise!r}.")
        check(self.init_scale >= 0, "init_scale", f"must be >= 0, got {self.init_scale!r}.")
        check(
            (self.kappa is None) == (self.delta is None),
            "kappa",
            f"set both `kappa` and `delta` or neither, got kappa={self.kappa!r}, delta={self.delta!r}.",
        )
        check(
            self.teacher != "orthogonal" or self.M <= self.d,
            "teacher",
            f'"orthogonal" needs M <= d, got M={self.M}, d={self.d}; use `teacher = "gaussian"`.',
        )
        for name, size in (("Q0", self.K * self.K), ("M0", self.K * self.M), ("P0", self.M * self.M)):
            value = getattr(self, name)
            if value is not None:
                check(
                    self.init == "explicit",
                    name,
                    f'is only used with `init = "explicit"`, got init={self.init!r}.',
                )
                check(len(value) == size, name, f"expects {size} values (row-major), got {len(value)}.")
        if self.v0 is not None:
            check(len(self.v0) == self.K, "v0", f"expects K={self.K} values, got {len(self.v0)}.")
        if self.init == "explicit":
            check(self.Q0 is not None, "Q0", 'is required with `init = "explicit"`.')
            check(self.M0 is not None, "M0", 'is required with `init = "explicit"`.')
            q0, m0, p0 = explicit_overlaps(self)
            check(np.allclose(q0, q0.T), "Q0", "must be symmetric.")
            check(np.allclose(p0, p0.T), "P0", "must be symmetric.")
            omega = np.block([[q0, m0], [m0.T, p0]])
            check(
                np.linalg.eigvalsh(omega).min() >= -1e-10 * max(1.0, np.abs(omega).max()),
                "Q0",
                "the overlaps [[Q0, M0], [M0^T, P0]] must form a positive semi-definite matrix.",
            )


# -- conventions -------------------------------------------------------------------------


def activation_code(p: TwoLayerParams) -> int:
    """Numba code of ``p.activation`` (:data:`kernels.twolayer.gaussian.ACTIVATION_CODES`)."""
    return ACTIVATION_CODES[p.activation]


def region(p: TwoLayerParams) -> str:
    """Region of the (kappa, delta) phase diagram of Veiga et al. 2022 (docs/twolayer.md §2.3).

    ``none`` without scalings; ``green`` for ``kappa + delta > 0``; ``blue`` on
    ``kappa + delta = 0``; ``orange`` for ``kappa < -delta < (kappa + 1) / 2``; ``red``
    beyond (``-delta > (kappa + 1) / 2``, learning rate too large for the ODE description).
    """
    if p.kappa is None or p.delta is None:
        return "none"
    s = p.kappa + p.delta
    if abs(s) <= BLUE_TOLERANCE:
        return "blue"
    if s > 0:
        return "green"
    return "orange" if -p.delta < (p.kappa + 1.0) / 2.0 else "red"


def steps_per_time(p: TwoLayerParams) -> float:
    """SGD steps per unit of ``time``: ``d``, ``d^(1+kappa+delta)`` or ``d^(1+2(kappa+delta))``."""
    r = region(p)
    if r == "none":
        return float(p.d)
    s = 0.0 if r == "blue" else p.kappa + p.delta
    exponent = 1.0 + s if s >= 0 else 1.0 + 2.0 * s
    return float(p.d) ** exponent


def steps_at(p: TwoLayerParams, times: np.ndarray) -> np.ndarray:
    """Number of SGD steps done by each time (rounded to the nearest integer)."""
    return np.rint(np.asarray(times, dtype=float) * steps_per_time(p)).astype(np.int64)


def time_unit(p: TwoLayerParams) -> str:
    """Human-readable time unit for attrs.

    With scalings the rule is stated for both signs of ``kappa + delta``: the store takes
    coordinate attrs from one point, while a (kappa, delta) grid spans several regions.
    """
    if region(p) == "none":
        return "steps / d"
    return "steps / d^(1 + kappa + delta) if kappa + delta >= 0, else steps / d^(1 + 2 (kappa + delta))"


def learning_rates(p: TwoLayerParams) -> tuple[float, float]:
    """Effective ``(lr, lr_v)`` per SGD step.

    Without scalings: ``(lr, lr_v)``. With them: ``gamma = lr d^(-delta) K / d^kappa``, i.e.
    Veiga's ``gamma_0 d^(-delta)`` with the nominal width ``p = d^kappa`` replaced by the
    actual ``K``. That keeps ``gamma / K = lr d^(-(kappa + delta))`` exact, which is the ratio
    that sets the regions (noise / learning) and makes one unit of ``time`` carry an O(lr)
    learning term at any fixed ``K``, so a (kappa, delta) grid at fixed ``K`` is Veiga et
    al.'s phase diagram (their ODE code uses ``gamma_0 / p`` with ``gamma_0 = p``, §1.4).
    """
    factor = 1.0 if p.delta is None else float(p.d) ** (-p.delta - p.kappa) * p.K
    lr_v = p.lr if p.lr_v is None else p.lr_v
    return p.lr * factor, lr_v * factor


def second_layers(p: TwoLayerParams) -> tuple[np.ndarray, np.ndarray]:
    """Initial student ``v`` (``v0`` if given) and the fixed teacher ``v*``."""
    if p.committee == "saad_solla":
        v, vs = np.ones(p.K), np.ones(p.M)
    else:
        v, vs = np.full(p.K, 1.0 / p.K), np.full(p.M, 1.0 / p.M)
    if p.v0 is not None:
        v = np.asarray(p.v0, dtype=float).copy()
    return v, vs


def explicit_overlaps(p: TwoLayerParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Q0, M0, P0`` as matrices (``P0 = None`` is the identity)."""
    q0 = np.asarray(p.Q0, dtype=float).reshape(p.K, p.K)
    m0 = np.asarray(p.M0, dtype=float).reshape(p.K, p.M)
    p0 = np.eye(p.M) if p.P0 is None else np.asarray(p.P0, dtype=float).reshape(p.M, p.M)
    return q0, m0, p0


# -- finite-d weights --------------------------------------------------------------------


def draw_teacher(p: TwoLayerParams, seed: Seed) -> np.ndarray:
    """Teacher first layer ``(M, d)`` from the stream ``"teacher"``."""
    g = rng(seed, "teacher")
    if p.teacher == "gaussian":
        return g.standard_normal((p.M, p.d))
    # QR of a Gaussian matrix: orthonormal rows, scaled so that P = I exactly.
    q, r = np.linalg.qr(g.standard_normal((p.d, p.M)))
    q *= np.sign(np.diag(r))  # Haar-distributed frame
    return np.ascontiguousarray(q.T) * math.sqrt(p.d)


def draw_weights(p: TwoLayerParams, seed: Seed) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Finite-d initial weights ``(W, W_star, v, v_star)`` of one point.

    ``W`` is ``(K, d)``, ``W_star`` ``(M, d)``. The teacher comes from the stream
    ``"teacher"``, the student from ``"init"`` (:func:`kernels.base.rng`), so an `sgd` and an
    `ode` point with the same seed and parameters share their initial overlaps.

    ``init = "random"`` and ``"small"`` draw i.i.d. ``N(0, init_scale^2)`` entries (the two
    differ only in the `ode` kernel, which takes ``"small"`` at ``d -> infinity``).
    ``init = "explicit"`` builds ``[W; W_star] = sqrt(d) L^T F`` with ``L L^T`` the overlap
    matrix ``[[Q0, M0], [M0^T, P0]]`` and ``F`` a random orthonormal frame, so the overlaps are
    exactly the given ones (needs ``d >= K + M``).
    """
    v, vs = second_layers(p)
    g = rng(seed, "init")
    if p.init == "explicit":
        check(p.d >= p.K + p.M, "d", f'must be >= K + M with `init = "explicit"`, got d={p.d}.')
        q0, m0, p0 = explicit_overlaps(p)
        omega = np.block([[q0, m0], [m0.T, p0]])
        # eigh instead of Cholesky: the overlap matrix may be singular (e.g. M0 = 0, Q0 = 0).
        evals, evecs = np.linalg.eigh(omega)
        root = evecs * np.sqrt(np.clip(evals, 0.0, None))  # root @ root.T = omega
        frame, r = np.linalg.qr(g.standard_normal((p.d, p.K + p.M)))
        frame *= np.sign(np.diag(r))
        weights = math.sqrt(p.d) * root @ frame.T
        return np.ascontiguousarray(weights[: p.K]), np.ascontiguousarray(weights[p.K :]), v, vs
    W_star = draw_teacher(p, seed)
    W = p.init_scale * g.standard_normal((p.K, p.d))
    return W, W_star, v, vs


def overlaps(W: np.ndarray, W_star: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Q = W W^T / d``, ``M = W W*^T / d``, ``P = W* W*^T / d``."""
    d = W.shape[1]
    return W @ W.T / d, W @ W_star.T / d, W_star @ W_star.T / d


def risk(p: TwoLayerParams, Q, M, P, v, v_star) -> float:
    """Population risk ``E[(f* - f)^2] / 2`` from the overlaps, label-noise floor excluded.

    Closed form for erf, ReLU and linear units (:func:`kernels.twolayer.gaussian.risk_overlaps`); add
    ``noise / 2`` for the risk on noisy labels.
    """
    f = np.ascontiguousarray
    return float(
        risk_overlaps(
            activation_code(p),
            f(Q, dtype=float),
            f(M, dtype=float),
            f(P, dtype=float),
            f(v, dtype=float),
            f(v_star, dtype=float),
        )
    )


__all__ = [
    "REGIONS",
    "TwoLayerParams",
    "activation_code",
    "draw_teacher",
    "draw_weights",
    "explicit_overlaps",
    "learning_rates",
    "overlaps",
    "region",
    "risk",
    "second_layers",
    "steps_at",
    "steps_per_time",
    "time_unit",
]
