"""Dynamical mean-field theory of GD, SGD and persistent SGD in single-layer models.

The `dmft` kernel solves the scalar effective process of Mignacco, Krzakala,
Urbani & Zdeborova (NeurIPS 2020, arXiv 2006.06098, "Dynamical mean-field
theory for stochastic gradient descent in Gaussian mixture classification"),
Mignacco, Urbani & Zdeborova (MLST 2021, arXiv 2103.04902, phase retrieval)
and Mignacco & Urbani (2022, arXiv 2112.10852), in the exact discrete-time form
of docs/dmft.md §3: for a step ``lr`` it reproduces
discrete GD / SGD / p-SGD, not only their ``lr -> 0`` limit. With ``dt > 0`` it
integrates the flow limit (``lr -> 0`` at fixed persistence time ``tau``) with
step ``dt`` instead.

Numerics (see :mod:`kernels.singlelayer.dmft.causal_pass` and :mod:`kernels.singlelayer.dmft.numerics`):

- one causal forward pass per block of trajectories (docs/dmft.md §4.2): every
  kernel row is estimated from the process up to that step before it is used,
  so the pass *is* the fixed point of the finite-sample equations;
- optional damped global iterations (``iterations > 1``): each further pass
  draws fresh trajectories and drives them with ``(1 - w)`` previous + ``w``
  new kernel rows, ``w = max(mixing, 1/pass)``; ``residual`` is the change
  between the last two passes, and a ``tolerance`` not met within the budget
  fails the point (:class:`~kernels.base.NumericalFailure`) with the residual
  in its message. On convex problems eight passes cut the block error about as
  much as eight times the trajectories (at the memory of one pass); on phase
  retrieval they did not (the damped map converges slowly where the dynamics
  amplify kernel noise), so there more trajectories are the better use of time;
- noise paths with covariance ``M_C`` from a growing Cholesky factor and fixed
  normals (docs/dmft.md §4.3 item 4); the factor comes from Gram-Schmidt on the
  sampled ``s_hat l'`` rows, because ``M_C`` itself is numerically singular
  near the flow limit;
- response kernel ``M_R(k,j) = alpha sig^4 E[s_hat l''(k) G(k,j) s_hat l''(j)]``
  with the factor at both times and prefactor ``alpha`` (docs/dmft.md §4.3 items
  1-2), ``G`` from the per-trajectory triangular system solved row by row in
  adjoint form on ``n_resp`` trajectories (exact, ``O(K n)`` memory,
  ``n_resp K^3 / 6`` multiply-adds, mostly BLAS-3); ``memory_lag`` keeps ``M_R``
  only within a lag, ``n_resp K L^2 / 2`` for a lag of ``L`` steps (docs/dmft.md §4.6);
- weight side (``Q``, ``C``, ``R``) integrated alongside, deterministically
  from the kernels, so ``Q(t)`` is known when the spherical multiplier is set;
- flow limit (``dt > 0``): the explicit step, or ``integrator = "semi-implicit"``,
  which divides each trajectory's step by ``1 + dt sig2 max(s_hat l'', 0)`` and
  solves the response of that step (:func:`kernels.singlelayer.dmft.numerics.response_row`);
- spherical constraint: ``lagrange`` uses ``nu = (T - alpha E[s_hat r l'])/Q - ridge``
  (dQ/dt = 0 in continuous time); ``projection`` instead chooses ``nu(k)`` so
  that the weight-side ``Q(k+1) = q0`` exactly: ``m(k+1)`` is affine and the
  weight-side diagonal quadratic in ``nu(k)``, so ``Q(k+1) = q0`` is a quadratic
  equation, solved in closed form (the real root nearest the first-order
  multiplier, which includes the pull ``(Q - q0) / (2 lr Q)``; one ``O(k^2)``
  pass per step). It is the analogue of "step, then rescale" of the finite-d
  runs (it differs from it at ``O(lr^2)`` per step: the rescaling also shrinks
  the gradient step). Plain ``lagrange`` lets ``Q`` drift at ``O(lr)`` and, on
  phase retrieval, that drift feeds back through ``nu`` into a blow-up after
  t ~ 1: use ``projection`` there;
- "moment matching": the Gaussian inputs of all trajectories are
  orthonormalised, which makes the ridge/square case exact to round-off;
- ``n_blocks`` independent blocks; outputs are block means and the
  Monte-Carlo error is the block standard error.

Memory: :func:`kernels.singlelayer.dmft.causal_pass.block_memory` (one block's arrays, about
``8 (K+1) ((2 + L) n_traj + 2 n_resp) + 48 (K+1)^2`` bytes with ``L = 2`` under Langevin noise,
more when iterating or semi-implicit) plus the two-time arrays every block returns, checked
against ``max_memory_gb`` before anything is allocated (``docs/dmft.md §4.8``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from kernels._blas import single_threaded_blas
from kernels.base import Kernel, NumericalFailure, check, rng
from kernels.schema import Output, pick
from kernels.singlelayer import model as sl
from kernels.singlelayer import schema as family
from kernels.singlelayer.dmft.causal_pass import Problem, block_memory, solve_block
from kernels.singlelayer.dmft.params import DMFTParams
from kernels.singlelayer.losses import LOSS_CODES
from kernels.timegrid import TIME_GRID_PARAMS, save_steps

# -- data models of the effective process (docs/singlelayer.md §2, docs/dmft.md §2) -------------


def _sampler(p: DMFTParams):
    """``(u, y)`` of the effective process (docs/dmft.md §2) from a given standard normal ``g``.

    Labels and clusters use the shared definitions of :mod:`kernels.singlelayer.model`;
    only the Gaussian part ``g`` comes from the solver (moment-matched).
    """

    def sample(gen: np.random.Generator, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if p.model == "glm":
            u = g.copy()
            return u, sl.labels(p, u, None, gen)
        c = sl.draw_clusters(p, gen, len(g))
        u = c + math.sqrt(p.noise) * g
        return u, sl.labels(p, u, c, gen)

    return sample


_TIME_UNITS = "t = step * lr (discrete, dt = 0) or step * dt (flow limit, dt > 0)"


class DMFTKernel(Kernel):
    """Discrete-time DMFT of GD / SGD / p-SGD for single-layer models (docs/dmft.md §2-§4)."""

    name = "dmft"
    version = "3"
    parts = "n_blocks"  # independent blocks: the engine may run them on several workers
    Params = DMFTParams
    shape_params = TIME_GRID_PARAMS | frozenset({"two_time"})
    example = {"alpha": 3.0, "ridge": 0.5, "t_max": 1.0, "n_times": 11, "n_traj": 400, "n_blocks": 2}

    failing_example = {"alpha": 3.0, "loss": "square", "lr": 2.5, "t_max": 25.0, "n_times": 3, "n_traj": 200}

    dims = family.DIMS | {
        d: dataclasses.replace(family.DIMS[d], units="step * lr or step * dt", description=_TIME_UNITS)
        for d in ("time", "time2")
    }
    outputs = (
        pick(family.OUTPUTS, "m", "Q")
        | {
            "nu": Output(("time",), "spherical Lagrange multiplier nu(t)"),
        }
        | pick(family.OUTPUTS, "train_loss", "train_error", "test_error")
        | {
            "passes": Output(
                (),
                "causal passes",
                description="causal passes run per block (the most over blocks; at most `iterations`)",
            ),
            "residual": Output(
                (),
                "change between the last two passes",
                description="max over blocks of max(max|dm|, max|dM_C|/max|M_C|, max|dM_R|/max|M_R|); "
                "NaN after a single pass (which is its own finite-sample fixed point)",
                allow_nan=True,
            ),
            "m_mc_error": Output(
                (),
                "Monte-Carlo standard error of m",
                description="max over time, from the spread of the blocks",
            ),
            "train_loss_mc_error": Output(
                (), "Monte-Carlo standard error of train_loss", description="max over time, from the blocks"
            ),
            "Q_mc_error": Output(
                (), "Monte-Carlo standard error of Q", description="max over time, from the blocks"
            ),
            "M_C": Output(("time", "time2"), "noise kernel M_C(t, t')", when="two_time"),
            "M_R": Output(("time", "time2"), "memory kernel M_R(t, t') (t > t')", when="two_time"),
            "C": family.OUTPUTS["C"],
            "R": dataclasses.replace(family.OUTPUTS["R"], long_name="weight response R(t, t') (t > t')"),
        }
    )
    attrs = family.ATTRS | {
        "time_units": _TIME_UNITS,
        "reference": "docs/dmft.md (exact discrete-time DMFT), Mignacco et al. 2020/2021",
    }

    # ------------------------------------------------------------------------------------
    def problem(self, p: DMFTParams) -> Problem:
        """The effective-process problem of these parameters (docs/singlelayer.md §4, docs/dmft.md §2)."""
        step = p.step
        if p.algorithm == "psgd":
            p01, p10 = sl.chain_probabilities(p.b, p.tau, step)
        else:
            p01, p10 = sl.selection_probabilities(p)
        return Problem(
            alpha=p.alpha,
            sig2=sl.orthogonal_variance(p),
            ridge=p.ridge,
            spherical=p.spherical,
            temperature=p.temperature,
            eta=step,
            n_steps=int(round(p.t_max / step)),
            shat=sl.sample_weight(p),
            b=sl.batch_fraction(p),  # gd: every sample selected from step 0, whatever `b` says
            p01=p01,
            p10=p10,
            loss_code=LOSS_CODES[p.loss],
            model_code=sl.MODEL_CODES[p.model],
            loss_scale=p.loss_scale,
            err_kind=sl.error_kind(p),
            # a random start has m(0) = O(d^-1/2): exactly 0 in the d -> infinity theory
            m0=p.m0 if p.init == "warm" else 0.0,
            q0=p.q0,
            sample=_sampler(p),
            n_traj=p.n_traj,
            n_resp=p.n_resp or p.n_traj,
            moment_matching=p.moment_matching,
            semi_implicit=p.integrator == "semi-implicit",
            # a lag shorter than one step would drop the whole memory: keep at least one step
            memory_lag=max(1, int(round(p.memory_lag / step))) if p.memory_lag > 0 else 0,
        )

    def _run_part(self, params: DMFTParams, seed, part: int) -> dict[str, np.ndarray]:
        """Block ``part`` of trajectories, with its own random streams, as per-step arrays."""
        prob = self.problem(params)
        # one block's work arrays + the two-time arrays every block returns (M_C, M_R, C, R)
        need = block_memory(prob, params.iterations > 1) + params.n_blocks * 8 * 4 * (prob.n_steps + 1) ** 2
        check(
            need <= params.max_memory_gb * 2**30,
            "max_memory_gb",
            f"this point needs {need / 2**30:.2f} GB (n_traj={params.n_traj}, "
            f"{prob.n_steps} steps); lower `n_traj`/`n_resp` or raise `max_memory_gb`.",
        )
        block, passes, residual = self._iterate(params, prob, seed, part)
        if not params.two_time:  # only the point's own outputs travel: no (K+1)^2 arrays
            block = {k: block[k] for k in ("m", "Q", "nu", "train_loss", "train_error")}
        return block | {"passes": np.array(passes), "residual": np.array(residual)}

    def _combine(self, params: DMFTParams, blocks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Block means at the saved times; Monte-Carlo errors from the spread of the blocks."""
        prob = self.problem(params)
        passes = max(int(b["passes"]) for b in blocks)
        residual = float(np.nanmax([b["residual"] for b in blocks])) if params.iterations > 1 else math.nan
        mean = {
            k: np.mean([b[k] for b in blocks], axis=0) for k in blocks[0] if k not in ("passes", "residual")
        }
        nb = len(blocks)
        sem = {
            k: (
                np.std([b[k] for b in blocks], axis=0, ddof=1) / math.sqrt(nb)
                if nb > 1
                else np.zeros_like(mean[k])
            )
            for k in ("m", "train_loss", "Q")
        }
        m, q = mean["m"], mean["Q"]
        idx = save_steps(params, prob.eta)
        test = sl.test_error(params, m, q)
        out = {
            "m": m[idx],
            "Q": q[idx],
            "nu": mean["nu"][idx],
            "train_loss": mean["train_loss"][idx],
            "train_error": mean["train_error"][idx],
            "test_error": test[idx],
            "passes": np.array(float(passes)),
            "residual": np.array(residual),
            "m_mc_error": np.array(sem["m"].max()),
            "train_loss_mc_error": np.array(sem["train_loss"].max()),
            "Q_mc_error": np.array(sem["Q"].max()),
        }
        if params.two_time:
            ix = np.ix_(idx, idx)
            C = np.mean([np.outer(b["m"], b["m"]) + b["C_theta"] / prob.sig2 for b in blocks], axis=0)
            out |= {"M_C": mean["M_C"][ix], "M_R": mean["M_R"][ix], "C": C[ix], "R": mean["R"][ix]}
        return out

    @staticmethod
    def _iterate(params: DMFTParams, prob: Problem, seed, blk: int) -> tuple[dict, int, float]:
        """Damped global iterations of one block: ``(result, passes, residual)``."""
        out, residual = None, math.nan
        for it in range(params.iterations):
            # pass 1 keeps the single-pass streams: iterations = 1 is the single causal pass
            tag = f"dmft/{blk}" if it == 0 else f"dmft/{blk}/pass{it}"
            gens = {s: rng(seed, f"{tag}/{s}") for s in ("init", "noise", "batch", "langevin")}
            try:
                # a diverging process overflows on its way to the divergence check: no warnings
                with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):
                    new = solve_block(prob, gens, out, max(params.mixing, 1.0 / (it + 1)))
            except FloatingPointError as exc:
                raise NumericalFailure(f"{exc} in block {blk}, pass {it + 1}; residual = inf") from exc
            _check_diverged(new["Q"], prob.eta, blk)
            if out is not None:
                residual = _change(out, new)
            out = new
            if params.tolerance > 0 and residual <= params.tolerance:
                break
        if params.tolerance > 0 and not residual <= params.tolerance:
            raise NumericalFailure(
                f"not converged after {it + 1} passes in block {blk}: residual {residual:.3g} "
                f"> tolerance {params.tolerance:g} (raise `iterations` or `n_traj`, or lower `mixing`)"
            )
        for key in ("noise_factor", "sums"):
            out.pop(key)
        return out, it + 1, residual


def _check_diverged(Q: np.ndarray, step: float, blk: int) -> None:
    """Fail as the simulation does when Q leaves any meaningful range (or stops being finite)."""
    bad = np.flatnonzero(~(Q < sl.DIVERGED))
    if bad.size:
        k = int(bad[0])
        raise NumericalFailure(
            f"order parameters diverged at step {k} (t = {k * step:g}) in block {blk}: "
            f"Q = {Q[k]:.3g} (> {sl.DIVERGED:g} or not finite); lower `lr` (or `dt`)"
        )


def _change(old: dict, new: dict) -> float:
    """Residual between two passes: max|dm| and the largest kernel change relative to its scale."""
    parts = [float(np.max(np.abs(new["m"] - old["m"])))]
    for key in ("M_C", "M_R"):
        scale = float(np.max(np.abs(new[key])))
        if scale > 0:
            parts.append(float(np.max(np.abs(new[key] - old[key]))) / scale)
    return max(parts)
