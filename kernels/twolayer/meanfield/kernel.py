"""The ``meanfield`` kernel: mean-field particle flow of a wide two-layer network.

Two discretisations of one Wasserstein gradient flow ``d_t rho = div(rho grad Psi(theta; rho))``
(Mei, Montanari & Nguyen, PNAS 2018, eq. 7, and its noisy version eq. 12; Chizat & Bach,
NeurIPS 2018) of ``f(x) = (1/p) sum_j a_j g(w_j.x / sqrt d)`` learning
``f*(x) = (1/k) sum_r a*_r g(w*_r.x / sqrt d)`` under the square loss, ``g = erf(. / sqrt 2)``
or ``relu``:

``method = "particles"``
    the ``p = K`` particles ``theta_j = (a_j, w_j)`` in ``R^(d+1)`` follow the population
    velocity field of docs/meanfield.md §2 (closed forms; :mod:`kernels.twolayer.meanfield.particles`),
    optional Langevin noise at ``temperature`` (MMN eq. 12) and L2 confinement
    ``weight_decay``, second layer fixed or trained. At finite ``K`` and ``d``
    this is *exactly* the gradient-flow part of the overlap ODE of the `ode` kernel
    (``quadratic_terms = False``) for the same ``K`` units: the tests check it to 1e-4.
``method = "reduced"`` / ``"reduced_dinf"``
    the per-unit overlaps ``(m_j, q_perp_j)`` of Arnaboldi et al. (COLT 2023,
    arXiv:2302.05882; docs/meanfield.md §4; :mod:`kernels.twolayer.meanfield.reduced`) with every
    pair, the self pair included, averaged over the angle ``Z`` of the orthogonal components
    (finite ``d``), or ``Z = 0`` (``d -> infinity``). Started from the same ``K`` initial units
    as the particles, so the two methods with one seed start from the same overlaps.

Integration (docs/meanfield.md §3.1): Dormand-Prince 5(4) with error control
(``integrator = "adaptive"``, the default since version 2) or explicit Euler at ``dt``
(``"euler"``, version 1's default and numbers) for the deterministic flow; with Langevin noise
(``temperature > 0``) Euler-Maruyama at ``dt`` whatever ``integrator`` says.

Conventions are those of :mod:`kernels.twolayer.model` (shared with `ode` and `sgd`): the student
is ``sum_j v_j g(.)`` with ``v_j = a_j / K`` (``committee = "mean"``: ``a_j = 1``), the
initial weights come from :func:`kernels.twolayer.model.draw_weights`, and ``time`` is
``steps / steps_per_time`` of one-pass SGD (``steps / d`` without scalings), in which the
flow runs at rate ``lr / K``; ``time_unit = "flow"`` switches to the K-independent flow time
``steps lr / (K d)`` (Arnaboldi et al. 2023, docs/twolayer.md §3.2). ``risk`` is the closed
form ``E[(f* - f)^2] / 2`` without the label-noise floor, as in `ode`.

Outputs: ``risk`` on the saved times; with ``histograms`` the density of ``(m_jr, q_j)`` on
fixed bins (so ``K`` stays sweepable); with ``save_particles = n`` the overlaps ``m``, ``q``
and second layer ``a`` of the first ``n`` units (names of the `sgd_online` kernel).

Activations: ``erf`` for every method; ``relu`` for ``method = "particles"`` only, with the
closed forms of docs/twolayer.md §6.3 (``I2``, ``J2``, and ``dI2/dC11`` by Price's theorem). The
reduced dynamics for ReLU would need the angle average of those kinked functions and is not
implemented (a ParameterError says so). SGD itself, the finite-step counterpart, is the `sgd`
kernel in online mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from kernels.base import Kernel, Seed
from kernels.schema import Dim, Output, pick
from kernels.timegrid import TIME_GRID_PARAMS
from kernels.twolayer import schema as family
from kernels.twolayer.meanfield.flow import Steps, run_particles, run_reduced
from kernels.twolayer.meanfield.params import MeanFieldParams
from kernels.twolayer.model import draw_weights, time_unit


def _time_units(p: MeanFieldParams) -> str:
    if p.time_unit == "flow":
        return "steps * lr_eff / (K d) (mean-field flow time, Arnaboldi et al. 2023)"
    return time_unit(p)


def _bin_centres(spec: tuple[float, float, int]) -> np.ndarray:
    lo, hi, n = spec
    edges = np.linspace(lo, hi, int(n) + 1)
    return 0.5 * (edges[1:] + edges[:-1])


class MeanFieldKernel(Kernel):
    """Mean-field particle PDE and its reduced ``(m, q_perp)`` dynamics; see the module docstring."""

    name = "meanfield"
    version = "2"
    Params = MeanFieldParams
    shape_params = TIME_GRID_PARAMS | {"M", "time_unit", "save_particles", "histograms", "hist_m", "hist_q"}
    example = {"d": 10, "K": 50, "M": 2, "t_max": 1.0, "n_times": 3, "time_unit": "flow", "save_particles": 3}
    # the stiffness guard of Euler: the second layer moves K^2 lr_v / lr = 5000 times faster
    failing_example = {
        "d": 10, "K": 50, "M": 2, "time_unit": "flow", "train_second_layer": True, "lr_v": 1.0,
        "integrator": "euler",
    }  # fmt: skip

    dims = family.DIMS | {
        "time": dataclasses.replace(family.DIMS["time"], units=_time_units),
        "m_bin": Dim(
            "m",
            lambda p: _bin_centres(p.hist_m),
            description="centre of the bin of m, the overlap with a teacher unit",
        ),
        "q_bin": Dim("q", lambda p: _bin_centres(p.hist_q), description="centre of the bin of q = |w|^2 / d"),
    }
    outputs = (
        pick(family.OUTPUTS, "risk")
        | {
            "density": Output(
                ("time", "teacher", "m_bin", "q_bin"),
                "density of units over (m, q)",
                description="histogram over units j of (m_jr, q_j), normalised to a density (fraction "
                "of units per unit area of the (m, q) plane); mass outside the bins is dropped",
                when="histograms",
            ),
        }
        | pick(family.OUTPUTS, "m", "q", "a")
    )
    attrs = family.ATTRS | {
        "time_units": _time_units,
        "dynamics": "population gradient flow (lr -> 0 at fixed K, d: the I3 part of the overlap "
        "ODE); integrator per point: Dormand-Prince 5(4) with error control (`integrator` "
        "'adaptive', temperature 0), explicit Euler with step dt in flow time ('euler', "
        "temperature 0), Euler-Maruyama with step dt (temperature > 0, either `integrator`)",
    }

    # -- running ------------------------------------------------------------
    def _run(self, params: MeanFieldParams, seed: Seed) -> Mapping[str, np.ndarray]:
        W, W_star, v, v_star = draw_weights(params, seed)
        # mean-field second layers: f = (1/K) sum_j a_j g, f* = (1/M) sum_r a*_r g
        a = params.K * np.asarray(v, dtype=float)
        a_star = params.M * np.asarray(v_star, dtype=float)
        steps = Steps(params)
        if params.method == "particles":
            return run_particles(params, seed, steps, W, W_star, a, a_star)
        return run_reduced(params, seed, steps, W, W_star, a, a_star)


# -- helpers --------------------------------------------------------------------------
