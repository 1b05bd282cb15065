"""The `gamp` kernel: Bayes-optimal GAMP at finite d, the ground truth of `amp`'s state evolution.

GAMP (Rangan 2011; docs/amp.md §6) with scalar variances, on ``n = round(alpha d)`` samples
drawn exactly as `sgd_multipass` draws them: the same :func:`kernels.base.rng` streams
``"teacher"`` and ``"data"`` used the same way (with the Gaussian prior the teacher, data and
labels are bit for bit those of :func:`kernels.singlelayer.sgd_multipass.simulation.draw_problem`;
the ±1 prior takes the signs of the same normals). With ``F = X / sqrt(d)``, one iteration is::

    V     = mean(v)
    omega = F a - V g                    (Onsager term: the previous g)
    g, -dg = g_out(y, omega, V), -d g_out / d omega
    A     = sum(-dg) / d                 (= alpha E[-dg])
    B     = F^T g + A a
    a, v  = f_a(A, B), f_v(A, B)

No damping: Bayes-optimal GAMP with i.i.d. Gaussian data follows its SE without it, which
is the point of the comparison. The start is ``a = m0 w* + sqrt(m0 (rho - m0)) z`` with
``z`` from the stream ``"init"`` orthogonal to ``w*`` and ``|z|^2 = d``, so ``m = q = m0``
exactly, and ``v = rho - m0``, ``g = 0``. Once ``V`` falls below
:data:`kernels.singlelayer.amp.state_evolution.MSE_FLOOR` the estimate is exact to round-off
and is kept (the channel functions divide by ``V``).

Cost per iteration: the two matrix-vector products (BLAS, single-threaded: one kernel per
CPU) plus ``O(n + d)`` in numba; ``bench/amp.py`` measures the ratio.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kernels._blas import single_threaded_blas
from kernels.base import Kernel, NumericalFailure, Seed, check, rng
from kernels.schema import pick
from kernels.singlelayer.amp import channels, priors
from kernels.singlelayer.amp import schema as family
from kernels.singlelayer.amp.kernel import codes
from kernels.singlelayer.amp.params import GLMInferenceParams
from kernels.singlelayer.amp.priors import RHO
from kernels.singlelayer.amp.state_evolution import MSE_FLOOR
from kernels.singlelayer.model import labels

MAX_ENTRIES = 4 * 10**8  # n d beyond this (3.2 GB of data) is refused


@dataclass(frozen=True, kw_only=True)
class GAMPParams(GLMInferenceParams):
    """The shared parameters plus the dimension.

    Parameters
    ----------
    d
        Input dimension (``n = round(alpha d)`` samples).
    """

    d: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.d >= 1, "d", f"must be a positive integer, got {self.d!r}.")
        n = max(1, round(self.alpha * self.d))
        check(
            n * self.d <= MAX_ENTRIES,
            "d",
            f"n d = {n * self.d:.3g} data entries at d = {self.d}, alpha = {self.alpha:g}: more than "
            f"{MAX_ENTRIES:.0e}; lower `d` or `alpha`.",
        )


def draw_problem(p: GLMInferenceParams, d: int, seed: Seed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Teacher ``w*`` (``d``), data ``X`` (``n, d``) and labels ``y``, as `sgd_multipass` draws them.

    The streams and the order of draws are those of
    :func:`kernels.singlelayer.sgd_multipass.simulation.draw_problem` for ``model = "glm"``;
    the Gaussian teacher is rescaled to ``|w*|^2 = d`` as there, the ±1 teacher is the signs.
    """
    n = max(1, int(round(p.alpha * d)))
    w = rng(seed, "teacher").standard_normal(d)
    if p.prior == "gaussian":
        w *= math.sqrt(d) / np.linalg.norm(w)
    else:
        w = np.where(w >= 0, 1.0, -1.0)
    gen = rng(seed, "data")
    X = gen.standard_normal((n, d))
    u = X @ w / math.sqrt(d)
    rule = types.SimpleNamespace(model="glm", teacher=p.teacher, noise=p.noise)  # what `labels` reads
    return w, X, labels(rule, u, None, gen)


def initial_estimate(p: GLMInferenceParams, w: np.ndarray, seed: Seed) -> np.ndarray:
    """``a`` with ``a.w*/d = |a|^2/d = m0`` (given ``|w*|^2 = d``)."""
    d = len(w)
    z = rng(seed, "init").standard_normal(d)
    z -= (z @ w / (w @ w)) * w
    z *= math.sqrt(d) / max(np.linalg.norm(z), 1e-300)
    return p.m0 * w + math.sqrt(p.m0 * (RHO - p.m0)) * z


def run_gamp(p: GLMInferenceParams, d: int, seed: Seed, state: dict | None = None) -> dict[str, np.ndarray]:
    """``m``, ``q``, ``mse`` per iteration of GAMP on one drawn problem.

    ``state``, if given, receives the final estimate ``"a"``, its variances ``"v"``, the
    teacher ``"w"`` and the data ``"X"``, ``"y"``.
    """
    w, X, y = draw_problem(p, d, seed)
    a = initial_estimate(p, w, seed)
    if state is not None:
        state.update(w=w, X=X, y=y)
    return iterate(p, X, y, w, a, state)


def iterate(
    p: GLMInferenceParams,
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    a: np.ndarray,
    state: dict | None = None,
) -> dict[str, np.ndarray]:
    """``p.iterations`` GAMP iterations from ``a`` (updated in place); see the module docstring."""
    channel, prior = codes(p)
    n, d = X.shape
    scale = 1.0 / math.sqrt(d)
    v = np.full(d, RHO - p.m0)
    g = np.zeros(n)
    minus_dg = np.empty(n)
    B = np.empty(d)
    out = {k: np.full(p.iterations + 1, np.nan) for k in ("m", "q", "mse")}

    def record(t: int) -> None:
        out["m"][t] = a @ w / d
        out["q"][t] = a @ a / d
        error = a - w
        out["mse"][t] = error @ error / d

    record(0)
    with single_threaded_blas():
        for t in range(1, p.iterations + 1):
            V = float(v.mean())
            if V < MSE_FLOOR * RHO:
                record(t)  # exact to round-off: keep the estimate
                continue
            omega = X @ a
            omega *= scale
            omega -= V * g
            channels.denoise_output(channel, y, omega, V, p.noise, g, minus_dg)
            A = float(minus_dg.sum()) / d
            np.dot(X.T, g, out=B)
            B *= scale
            B += A * a
            if not (math.isfinite(A) and (prior != priors.GAUSSIAN or A > -1.0)):
                raise NumericalFailure(
                    f"GAMP diverged at iteration {t}: the precision A = {A:.3g} leaves the prior's "
                    "domain (finite d, small alpha: the channel's Fisher information estimate is negative)",
                    out,
                )
            priors.denoise_input(prior, A, B, a, v)
            record(t)
            if not np.isfinite(out["mse"][t]):
                raise NumericalFailure(f"GAMP diverged at iteration {t}: non-finite estimate", out)
    if state is not None:
        state.update(a=a, v=v)
    return out


class GAMPKernel(Kernel):
    """Bayes-optimal GAMP at finite d: the simulation counterpart of `amp` (docs/amp.md §6)."""

    name = "gamp"
    version = "1"
    Params = GAMPParams
    shape_params = frozenset({"iterations"})
    example = {"d": 200, "alpha": 2.0, "teacher": "sign", "m0": 0.1, "iterations": 8}
    # m0 = 0 with an even channel at small d: the estimated Fisher information alpha E[-dg]
    # fluctuates negative, the variances grow and the precision A leaves the prior's domain
    failing_example = {"d": 40, "alpha": 3.0, "teacher": "abs", "m0": 0.0, "iterations": 10}

    dims = pick(family.DIMS, "iteration")
    outputs = pick(family.OUTPUTS, "m", "q", "mse")
    attrs = {"rho": RHO, "conventions": "X_mu_i ~ N(0, 1/d), z = X w*, n = round(alpha d) (docs/amp.md §1)"}

    def _run(self, params: GAMPParams, seed: Seed) -> Mapping[str, np.ndarray]:
        return run_gamp(params, params.d, seed)
