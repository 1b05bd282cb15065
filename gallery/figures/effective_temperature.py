"""Effective temperature of SGD: the fluctuation-dissipation plot at stationarity, DMFT and finite d.

After Mignacco & Urbani 2022 (arXiv 2112.10852; the AMLD 2022 talk). In a stationary state,
Langevin dynamics at temperature T obeys chi(t, t') = (C(t, t) - C(t, t')) / T; SGD and
persistent SGD in the under-parameterised regime obey the same relation with an effective
temperature T_eff (docs/dmft.md §2.2). Setting: two-cluster mixture, alpha = 3, Delta = 0.5,
logistic loss, ridge 0.5 (train error ~5 %), read at t = 24 over lags up to 3.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from analysis.singlelayer import effective_temperature, fdt_curve, fixed_params
from gallery.figure import Figure

MAX_LAG = 3.0  # lags of the fit, in time units: C(t, t') has decayed by ~half of its range
EARLIER_READING = 4.0  # T_eff is also read this much earlier: the stationarity check


def _steps(ds):
    """The time step of each point: the swept ``lr`` or the fixed one."""
    return [float(x) for x in ds.lr.values] if "lr" in ds.dims else [float(fixed_params(ds)["lr"])]


def _t_eff(ds, kick, at, per_seed=False):
    """T_eff from the seed-mean (or each seed's) C, R and m, at each time step (docs/dmft.md §2.2)."""
    found = []
    for lr in _steps(ds):
        point = ds.sel(lr=lr) if "lr" in ds.dims else ds
        C, R, m = (point[x] if per_seed else point[x].mean("seed") for x in ("C", "R", "m"))
        found.append(effective_temperature(C, R, at=at, max_lag=MAX_LAG, kick=kick, step=lr, m=m))
    return xr.concat(found, "lr") if "lr" in ds.dims else found[0]


def _seed_error(ds, kick, at):
    """Standard error of T_eff from the spread of the per-seed readings (NaN with one seed)."""
    if ds.sizes["seed"] < 2:
        return np.nan * _t_eff(ds, kick, at)
    return _t_eff(ds, kick, at, per_seed=True).std("seed", ddof=1) / np.sqrt(ds.sizes["seed"])


def _curve(ds, kick, at, lr):
    """The FDT plot's points of one point of a store: connected C(t, t') and chi(t, t')."""
    C, R, m = (ds[x].mean("seed") for x in ("C", "R", "m"))
    curve = fdt_curve(C, R, at=at, max_lag=MAX_LAG, kick=kick, step=lr, m=m)
    c_tt = float((C - m * m.rename(time="time2")).sel(time=at, time2=at, method="nearest"))
    return c_tt - curve.dC, curve.chi


def _rounded(da):
    return [round(float(v), 5) for v in np.atleast_1d(da.values)]


def analyse(datasets):
    step_th, step_sim = datasets["fdt_step_dmft"], datasets["fdt_step_sim"]
    psgd_th, psgd_sim = datasets["fdt_psgd_dmft"], datasets["fdt_psgd_sim"]
    at = float(step_th.time[-1])
    temperature = float(step_th.temperature.sel(case="gd"))
    lrs = [float(x) for x in step_th.lr.values]
    numbers: dict = {"at": at, "max_lag": MAX_LAG, "langevin_temperature": temperature, "lr": lrs}
    for side, ds, kick in (("dmft", step_th, False), ("sim", step_sim, True)):
        t_eff = _t_eff(ds, kick, at)
        earlier = _t_eff(ds, kick, at - EARLIER_READING)
        numbers[f"langevin_T_fit_{side}"] = _rounded(t_eff.sel(case="gd"))
        numbers[f"sgd_T_eff_{side}"] = _rounded(t_eff.sel(case="sgd"))
        numbers[f"drift_{side}"] = round(float(abs(earlier / t_eff - 1).max()), 4)  # over 4 time units
        if side == "sim":
            numbers["sgd_T_eff_sim_error"] = _rounded(_seed_error(ds, kick, at).sel(case="sgd"))
            numbers["langevin_T_fit_sim_error"] = _rounded(_seed_error(ds, kick, at).sel(case="gd"))
    fits = np.array(numbers["langevin_T_fit_dmft"])
    numbers["langevin_relative_error_dmft"] = [round(float(f / temperature - 1), 4) for f in fits]
    if len(lrs) >= 2:  # first order in the step (docs/dmft.md §7.6): extrapolate the two smallest
        (l1, f1), (l2, f2) = sorted(zip(lrs, fits))[:2]
        numbers["langevin_T_extrapolated_dmft"] = round(float(f1 + (f1 - f2) * l1 / (l2 - l1)), 5)
    numbers["psgd_b"] = [float(x) for x in psgd_th.b.values]
    numbers["psgd_tau"] = [float(x) for x in psgd_th.tau.values]
    t_psgd = _t_eff(psgd_th, False, at)
    numbers["psgd_T_eff_dmft"] = [_rounded(t_psgd.sel(b=b)) for b in psgd_th.b.values]  # [b][tau]
    numbers["psgd_drift_dmft"] = round(
        float(abs(_t_eff(psgd_th, False, at - EARLIER_READING) / t_psgd - 1).max()), 4
    )
    t_sim = _t_eff(psgd_sim, True, at)
    numbers["psgd_sim_b"] = [float(x) for x in psgd_sim.b.values]
    numbers["psgd_T_eff_sim"] = [_rounded(t_sim.sel(b=b)) for b in psgd_sim.b.values]
    numbers["psgd_T_eff_sim_error"] = [
        _rounded(_seed_error(psgd_sim, True, at).sel(b=b)) for b in psgd_sim.b.values
    ]
    return numbers


def draw(datasets, numbers):
    step_th, step_sim = datasets["fdt_step_dmft"], datasets["fdt_step_sim"]
    psgd_th = datasets["fdt_psgd_dmft"]
    at, temperature, lrs = numbers["at"], numbers["langevin_temperature"], numbers["lr"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax = axes[0]
    for case, marker in (("gd", "s"), ("sgd", "o")):
        for j, lr in enumerate(lrs):
            color = f"C{j}"
            name = "Langevin" if case == "gd" else "SGD"
            x, chi = _curve(step_th.sel(case=case, lr=lr), False, at, lr)
            ax.plot(
                x, chi, "-" if case == "sgd" else "--", color=color, lw=1.5, label=f"DMFT {name}, lr = {lr:g}"
            )
            x, chi = _curve(step_sim.sel(case=case, lr=lr), True, at, lr)
            ax.plot(x[::2], chi[::2], marker, color=color, ms=3.5, mfc="none")
    # the equilibrium line through the Langevin run's equal-time point, slope -1/T
    x, _ = _curve(step_th.sel(case="gd", lr=min(lrs)), False, at, min(lrs))
    x = np.linspace(float(x.min()), float(x.max()), 10)
    ax.plot(x, (x.max() - x) / temperature, "k:", lw=1.2, label=f"slope −1/T, T = {temperature:g}")
    ax.set_xlabel("connected correlation C(t, t') − m(t) m(t')")
    ax.set_ylabel("χ(t, t') = ∫ R(t, s) ds from t' to t")
    ax.set_title(f"fluctuation-dissipation at t = {at:g}, lags ≤ {MAX_LAG:g}\n(points: d = "
                 f"{fixed_params(step_sim)['d']}, mean of {step_sim.sizes['seed']} seeds; squares Langevin)",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=6.5)

    ax = axes[1]
    ax.plot(lrs, numbers["sgd_T_eff_dmft"], "o-", color="C3", label="SGD, DMFT")
    ax.errorbar(lrs, numbers["sgd_T_eff_sim"], numbers["sgd_T_eff_sim_error"], fmt="o", color="C3",
                mfc="none", capsize=2, label="SGD, simulation")  # fmt: skip
    ax.plot(lrs, numbers["langevin_T_fit_dmft"], "s--", color="k", label="Langevin: fitted T, DMFT")
    ax.errorbar(lrs, numbers["langevin_T_fit_sim"], numbers["langevin_T_fit_sim_error"], fmt="s", color="k",
                mfc="none", capsize=2, label="Langevin: fitted T, simulation")  # fmt: skip
    ax.axhline(temperature, color="grey", lw=0.8, ls=":", label=f"Langevin T = {temperature:g}")
    ax.set_xlabel("time step lr (SGD b = 0.2)")
    ax.set_ylabel("T_eff (inverse FDT slope)")
    ax.set_title("vanilla SGD: T_eff grows with the step", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[2]
    taus = numbers["psgd_tau"]
    for j, b in enumerate(numbers["psgd_b"]):
        ax.plot(taus, numbers["psgd_T_eff_dmft"][j], "o-", color=f"C{j + 4}", label=f"DMFT, b = {b:g}")
    for k, b in enumerate(numbers["psgd_sim_b"]):
        j = numbers["psgd_b"].index(b)
        ax.errorbar(taus, numbers["psgd_T_eff_sim"][k], numbers["psgd_T_eff_sim_error"][k], fmt="o",
                    color=f"C{j + 4}", mfc="none", capsize=2, label=f"simulation, b = {b:g}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("persistence time τ")
    ax.set_ylabel("T_eff")
    ax.set_title(f"persistent SGD, lr = {fixed_params(psgd_th)['lr']:g}: T_eff grows with τ, falls with b",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=7)
    fig.suptitle(
        "Effective temperature of SGD (two-cluster mixture, α = 3, Δ = 0.5, logistic, λ = 0.5: "
        "under-parameterised). Langevin's fitted T → T as lr → 0 "
        f"(extrapolated {numbers.get('langevin_T_extrapolated_dmft', float('nan')):.4f}); "
        f"T_eff read at t = {at:g} and {at - EARLIER_READING:g} differ by ≤ "
        f"{max(numbers['drift_dmft'], numbers['psgd_drift_dmft']):.0%} (DMFT)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="effective_temperature",
    title="Effective temperature of SGD and p-SGD from the FDT plot, Langevin as the check (MU 2022)",
    grids=("fdt_step_dmft", "fdt_step_sim", "fdt_psgd_dmft", "fdt_psgd_sim"),
    analyse=analyse,
    draw=draw,
    small_note="to t = 16; lr 0.1, 0.2; b 0.2, 0.8; tau 0.5, 2; DMFT 1 block of 10000; d = 500, 3 seeds",
)
