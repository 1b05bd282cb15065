"""The sample complexities of phase retrieval, after the Zdeborová talk's punchline figure.

How many samples per dimension, alpha = n/d, each method needs to recover the signal of noiseless
phase retrieval: information-theoretically alpha_IT = 1, AMP alpha_AMP = 1.128 (state evolution,
the `amp` kernel), then gradient methods at a finite d and horizon (persistent SGD and GD from a
warm start at d = 100-400, t = 50; over-parametrised GD with K hidden units and persistent SGD from
a random start at d = 40, t = 1000: the alpha where half of the seeds recover, refined), finite-d
GAMP beside its
state evolution, and the thresholds with one teacher shared by all seeds against a fresh one.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis.inference import (
    fixed_param,
    located,
    recovery_bracket,
    separated,
    state_evolution_gap,
    success_fractions,
    teacher_comparison,
)
from analysis.twolayer import fit_power_law
from gallery.figure import Figure

PERFECT = 1e-10  # an MSE below this is perfect recovery (SE reports 0 there: docs/amp.md §2.3)
GAMP_ALPHA = 1.45  # the alpha of the GAMP grid (experiments/gallery/*/sample_complexity_gamp.toml)
COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _case_label(ds, case: str) -> str:
    """A case of ``ds`` as the figure names it: ``GD`` or ``pSGD tau=2`` (from the case's own
    ``algorithm`` and ``tau``, whether or not its label in the store tells ``tau``)."""
    if str(ds.algorithm.sel(case=case).values) == "gd":
        return "GD"
    return f"pSGD tau={float(ds.tau.sel(case=case)):g}"


def _values(ds, name: str) -> list[tuple[int, dict]]:
    """``(value, selection)`` of a parameter that is a dim of ``ds`` or held fixed by its grid."""
    if name in ds.dims:
        return [(int(v), {name: v}) for v in ds[name].values]
    return [(int(fixed_param(ds, name)), {})]


def _lines(datasets) -> dict[str, tuple[str, dict]]:
    """Label -> (grid stem, line selection) of every gradient-method threshold, in plot order."""
    sgd, over = datasets["sample_complexity_sgd"], datasets["sample_complexity_overparam"]
    lines = {}
    for case in sgd.case.values:
        for d, sel in _values(sgd, "d"):
            lines[f"{_case_label(sgd, case)} d={d}"] = ("sample_complexity_sgd", {"case": case} | sel)
    d = fixed_param(over, "d")
    for K in over.hidden.values:
        lines[f"GD K={int(K)} d={d}"] = ("sample_complexity_overparam", {"hidden": K})
    rand = datasets["sample_complexity_random"]  # p-SGD in the over-parametrised grid's setting
    for case in rand.case.values:
        lines[f"{_case_label(rand, case)} K=1 d={fixed_param(rand, 'd')}"] = (
            "sample_complexity_random",
            {"case": case},
        )
    return lines


def _teacher_lines(datasets) -> dict[str, dict]:
    """``"pSGD tau=1 d=100"`` -> the selection of that line in the teacher grid (teacher_seed aside)."""
    teacher = datasets["sample_complexity_teacher"]
    return {
        f"{_case_label(teacher, case)} d={d}": {"case": case} | sel
        for d, sel in _values(teacher, "d")
        for case in teacher.case.values
    }


def _se_path(amp):
    """SE's overlap path at the alpha nearest the GAMP grid's."""
    return amp.m.squeeze("seed", drop=True).sel(alpha=GAMP_ALPHA, method="nearest")


def _band(t: dict) -> tuple[float, float]:
    return t["band_lower"], t["band_upper"]


def analyse(datasets) -> dict:
    amp = datasets["sample_complexity_amp"]
    numbers = {
        "alpha_AMP": recovery_bracket(amp, "mse_amp", PERFECT),
        "alpha_IT": recovery_bracket(amp, "mse_bayes", PERFECT),
    }
    numbers["thresholds"] = {
        label: located(datasets[stem], **sel) for label, (stem, sel) in _lines(datasets).items()
    }
    path = _se_path(amp)
    gamp = datasets["sample_complexity_gamp"]
    numbers["gamp_gap"] = {str(d): g for d, g in state_evolution_gap(gamp, path).items()}
    single = state_evolution_gap(gamp, path, per_seed=True)
    numbers["gamp_gap_per_seed"] = {str(d): g for d, g in single.items()}
    if gamp.sizes["d"] > 2:  # one run's deviation ~ d^(-1/2) (docs/amp.md §8); the mean's bias falls faster
        for key in ("gamp_gap", "gamp_gap_per_seed"):
            d, gap = zip(*((int(k), v) for k, v in numbers[key].items()))
            numbers[f"{key}_slope"] = fit_power_law(d, gap).as_dict()
    # the talk's ordering at the smallest d of the warm-start grid, each threshold's confidence
    # band (the bracket for the deterministic SE): IT < AMP < pSGD tau=1 < GD
    t = numbers["thresholds"]
    d = min(d for d, _ in _values(datasets["sample_complexity_sgd"], "d"))
    chain = [numbers["alpha_IT"], numbers["alpha_AMP"], t[f"pSGD tau=1 d={d}"], t[f"GD d={d}"]]
    numbers["ordering_separated"] = separated([_band(x) for x in chain])
    # width lowers GD's sample complexity (random start, one d): K = d before K = 1
    over = datasets["sample_complexity_overparam"]
    widths = sorted(int(K) for K in over.hidden.values)
    dk = fixed_param(over, "d")
    numbers["width_separated"] = separated([_band(t[f"GD K={K} d={dk}"]) for K in (widths[-1], widths[0])])
    # one d, start and horizon for every method: the random-start lines, in the order they recover
    random_start = [k for k, (stem, _) in _lines(datasets).items() if stem != "sample_complexity_sgd"]
    numbers["random_start_order"] = sorted(random_start, key=lambda k: t[k]["estimate"])
    # the talk's order at that one d: IT < AMP < p-SGD (tau = 1) < over-param. GD (K = d) < GD (K = 1)
    psgd = next(k for k in random_start if k.startswith("pSGD tau=1"))
    talk = [numbers["alpha_IT"], numbers["alpha_AMP"], t[psgd], t[f"GD K={widths[-1]} d={dk}"]]
    talk.append(t[f"GD K={widths[0]} d={dk}"])
    numbers["talk_order"] = bool(np.all(np.diff([x["estimate"] for x in talk]) > 0))
    numbers["talk_order_separated"] = separated([_band(x) for x in talk])
    teacher = datasets["sample_complexity_teacher"]
    numbers["teacher"] = {
        label: teacher_comparison(teacher, **sel) for label, sel in _teacher_lines(datasets).items()
    }
    return numbers


def _fractions(ax, ds, sel, colour, label, threshold=None, band=True, bars=True, **style):
    """The success fraction of one line with its 95 % Wilson interval; the located alpha_1/2 dashed
    with its band shaded."""
    f = success_fractions(ds).sel(sel)
    f = f.where(f.n > 0, drop=True)
    interval = np.clip([f.fraction - f.low, f.high - f.fraction], 0, None)  # round-off at 0 and 1
    style = {"fmt": "o-", "ms": 2.5, "lw": 1} | style
    yerr = interval if bars else None
    ax.errorbar(f.alpha, f.fraction, yerr=yerr, color=colour, label=label, elinewidth=0.6, **style)
    if threshold is not None and np.isfinite(threshold["estimate"]):
        ax.axvline(threshold["estimate"], color=colour, ls="--", lw=0.8)
        if band:
            ax.axvspan(*_band(threshold), color=colour, alpha=0.08)


def _success_axes(ax, title, ylabel="fraction of seeds recovering"):
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set(xlabel="alpha = n / d", ylabel=ylabel, title=title, ylim=(-0.03, 1.03))
    ax.legend(fontsize=7, loc="lower right")


def _draw_theory(axes, datasets, numbers):
    amp = datasets["sample_complexity_amp"]
    ax = axes[0]
    for name, label in (("mse_bayes", "Bayes-optimal"), ("mse_amp", "AMP")):
        curve = amp[name].where(amp.ok).squeeze(drop=True)
        ax.plot(curve.alpha, curve, "-", lw=1.5, label=label)
    for key, colour in (("alpha_IT", "C0"), ("alpha_AMP", "C1")):
        t = numbers[key]
        ax.axvline(t["estimate"], color=colour, ls="--", lw=1)
        ax.text(
            t["estimate"],
            0.93,
            f" {key} = {t['estimate']:.3f}",
            color=colour,
            fontsize=8,
            rotation=90,
            va="top",
        )
    ax.set(
        xlabel="alpha = n / d", ylabel="MSE (d -> infinity)", title="state evolution: Bayes-optimal vs AMP"
    )
    ax.legend(fontsize=8)

    ax = axes[1]
    gamp = datasets["sample_complexity_gamp"]
    path = _se_path(amp)
    ax.plot(path.iteration, path, "k-", lw=2, label="state evolution")
    for d in gamp.d.values:
        m = gamp.m.sel(d=d).where(gamp.ok.sel(d=d))
        mean, sem = m.mean("seed"), m.std("seed") / np.sqrt(m.count("seed"))
        ax.errorbar(mean.iteration, mean, yerr=sem, fmt="o", ms=2.5, label=f"GAMP d = {d}")
    ax.set(
        xlabel="iteration",
        ylabel="overlap m",
        title=f"GAMP at finite d vs SE, alpha = {float(path.alpha):.2f}",
    )
    ax.legend(fontsize=7, loc="upper left")
    inset = ax.inset_axes([0.6, 0.1, 0.36, 0.27])
    title = []
    for key, marker, name in (("gamp_gap_per_seed", "ks", "per seed ■"), ("gamp_gap", "ko", "seed mean ○")):
        d, gap = zip(*((int(k), v) for k, v in numbers[key].items()))
        inset.loglog(d, gap, marker, ms=3, mfc="none" if marker == "ko" else "k")
        slope = numbers.get(f"{key}_slope")
        if slope:
            inset.loglog(d, slope["prefactor"] * np.array(d, float) ** slope["slope"], "k-", lw=0.6)
            title.append(f"{name}: d^({slope['slope']:.2f} ± {slope['slope_error']:.2f})")
    inset.set_title("\n".join(["|m - m_SE| against d", *title]), fontsize=6)
    inset.set_xticks(d, [str(x) for x in d], fontsize=6)
    inset.minorticks_off()
    inset.tick_params(labelsize=6)


def _draw_ladder(ax, datasets, numbers):
    """The punchline: every located threshold with its band, grouped by setting (d -> infinity; one d,
    random start and horizon for every gradient method; warm start at several d), ordered in each."""
    over = datasets["sample_complexity_overparam"]
    thresholds, lines = numbers["thresholds"], _lines(datasets)
    warm = sorted(
        (k for k, (stem, _) in lines.items() if stem == "sample_complexity_sgd"),
        key=lambda k: thresholds[k]["estimate"],
    )
    groups = {
        "d -> infinity": {"IT (Bayes)": numbers["alpha_IT"], "AMP (SE)": numbers["alpha_AMP"]},
        f"random start, d = {fixed_param(over, 'd')}, t = {fixed_param(over, 't_max'):g}": {
            k: thresholds[k] for k in numbers["random_start_order"]
        },
        "warm start m0 = 0.2, t = 50": {k: thresholds[k] for k in warm},
    }
    labels, y = [], 0
    for name, rows in groups.items():
        ax.text(
            0.01, y - 0.1, name, transform=ax.get_yaxis_transform(), va="bottom", fontsize=7, style="italic"
        )
        for label, t in rows.items():
            colour = (
                "C1" if "(" in label else ("C2" if "pSGD" in label else ("C3" if " K=" in label else "C0"))
            )
            ax.plot(_band(t), [y, y], color=colour, lw=6, alpha=0.3, solid_capstyle="butt")
            ax.plot([t["lower"], t["upper"]], [y, y], color=colour, lw=2)
            ax.plot(t["estimate"], y, "ko", ms=3.5)
            ax.text(t["band_upper"] + 0.05, y, f"{t['estimate']:.2f}", va="center", fontsize=7)
            labels.append(label)
            y += 1
        ax.axhline(y - 0.5, color="grey", lw=0.5)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(len(labels) - 0.5, -0.7)
    ax.axvline(2.0, color="grey", ls=":", lw=0.8)
    ax.set(
        xlabel="alpha at which half of the seeds recover",
        title="sample complexities (bar: 95 % band, line: bracket)",
    )


def _draw_gradient(axes, datasets, numbers):
    sgd = datasets["sample_complexity_sgd"]
    t = numbers["thresholds"]
    for ax, case in zip(axes, sgd.case.values):
        for colour, (d, sel) in zip(COLOURS, _values(sgd, "d")):
            label = f"{_case_label(sgd, case)} d={d}"
            _fractions(
                ax, sgd, {"case": case} | sel, colour, f"d = {d}: {t[label]['estimate']:.2f}", t[label]
            )
        _success_axes(ax, f"{_case_label(sgd, case)}: success m(50) > 0.9")


def _draw_overparam(axes, datasets, numbers):
    over = datasets["sample_complexity_overparam"]
    d, t_max = fixed_param(over, "d"), fixed_param(over, "t_max")
    ax = axes[0]
    for colour, K in zip(COLOURS, over.hidden.values):
        label = f"GD K={int(K)} d={d}"
        threshold = numbers["thresholds"][label]
        _fractions(ax, over, {"hidden": K}, colour, f"K = {int(K)}: {threshold['estimate']:.2f}", threshold)
    rand = datasets["sample_complexity_random"]
    for colour, case in zip(COLOURS[len(over.hidden) :], rand.case.values):
        label = f"{_case_label(rand, case)} K=1 d={d}"
        threshold = numbers["thresholds"][label]
        name = f"{_case_label(rand, case)}, K = 1: {threshold['estimate']:.2f}"
        _fractions(ax, rand, {"case": case}, colour, name, threshold, band=False, fmt="s--")
    ax.axvline(2.0, color="grey", ls=":", lw=0.8, label="alpha = 2 (K >= d, d -> inf)")
    _success_axes(ax, f"random start, d = {d}, t = {t_max:g}", "fraction with |S - S*|/|S*| < 0.1")

    ax = axes[1]  # the widest student's median matrix error against time, at the coarse alphas
    widest = over.hidden.values.max()
    error = over.matrix_error.where(over.ok).sel(hidden=widest)
    coarse = [a for a in error.alpha.values if error.sel(alpha=a).count("seed").any() and float(a) % 0.5 == 0]
    for alpha, colour in zip(coarse, plt.cm.viridis(np.linspace(0, 1, len(coarse)))):
        median = error.sel(alpha=alpha).median("seed").isel(time=slice(1, None))
        ax.loglog(median.time, median, color=colour, label=f"alpha = {alpha:g}")
    times = error.time.values[1:]
    ax.loglog(times, 3.0 / times, "k--", lw=0.8, label="1/t")
    ax.axhline(0.1, color="grey", lw=0.5)
    ax.set(
        xlabel="t",
        ylabel="seed median |S - S*| / |S*|",
        title=f"K = {int(widest)}: plateau below alpha = 2, ~1/t above",
    )
    ax.legend(fontsize=6, ncol=2)


def _draw_teacher_lines(axes, datasets, numbers):
    """Per line of the teacher grid: the success fraction with a fresh and with each fixed teacher,
    and the warm-start grid's fresh line (another grid seed) where it has that line."""
    teacher, sgd = datasets["sample_complexity_teacher"], datasets["sample_complexity_sgd"]
    lines = _lines(datasets)
    teacher_lines = _teacher_lines(datasets)
    for ax in axes[len(teacher_lines) :]:  # --small has one line
        ax.axis("off")
    for ax, (label, sel) in zip(axes, teacher_lines.items()):
        found = numbers["teacher"][label]
        if label in lines:
            ref = lines[label][1]
            ref_t = numbers["thresholds"][label]
            _fractions(
                ax,
                sgd,
                ref,
                "k",
                f"fresh, grid seed 0: {ref_t['estimate']:.2f}",
                ref_t,
                band=False,
                fmt="s-",
            )
        _fractions(
            ax,
            teacher,
            sel | {"teacher_seed": -1},
            "C0",
            f"fresh, grid seed 1: {found['fresh']['estimate']:.2f}",
            found["fresh"],
            band=False,
            fmt="s-",
        )
        for colour, (k, t) in zip(COLOURS[1:], found["fixed"].items()):
            _fractions(
                ax,
                teacher,
                sel | {"teacher_seed": k},
                colour,
                f"teacher {k}: {t['estimate']:.2f}",
                t,
                band=False,
                bars=False,
                lw=0.8,
                ms=2,
            )
        _success_axes(ax, f"{label}: fresh vs fixed teacher")
        ax.set_xlim(1.9, 5.1)  # where the fractions move


def _draw_teacher_summary(ax, numbers):
    """Every teacher line's alpha_1/2: fresh and fixed teachers, with the fixed ones' spread."""
    rows = []
    for label, found in numbers["teacher"].items():
        rows.append((f"{label} fresh", found["fresh"], "C0"))
        rows += [
            (f"{label} teacher {k}", t, COLOURS[1 + i]) for i, (k, t) in enumerate(found["fixed"].items())
        ]
    for y, (_, t, colour) in enumerate(rows):
        ax.plot(_band(t), [y, y], color=colour, lw=5, alpha=0.3, solid_capstyle="butt")
        ax.plot(t["estimate"], y, "o", color=colour, ms=3.5)
    right = max(r[1]["band_upper"] for r in rows) + 0.05
    for label, found in numbers["teacher"].items():
        y = [i for i, row in enumerate(rows) if row[0].startswith(label + " ")]
        spread = f"fixed: sd {found['fixed_spread']:.2f}\n" if np.isfinite(found["fixed_spread"]) else ""
        text = f"{spread}max shift {found['max_shift']:.2f}"
        ax.text(right, np.mean(y), text, va="center", fontsize=6)
    ax.set_xlim(right=right + 1.3)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set(xlabel="alpha_1/2 (dot) and its 95 % band", title="alpha_1/2: fixed teachers vs a fresh one")


def draw(datasets, numbers):
    fig = plt.figure(figsize=(18, 12.5), layout="constrained")
    grid = fig.add_gridspec(3, 4)
    ax = lambda r, c: fig.add_subplot(grid[r, c])  # noqa: E731
    _draw_theory([ax(0, 0), ax(0, 1)], datasets, numbers)
    _draw_ladder(fig.add_subplot(grid[0, 2:]), datasets, numbers)
    _draw_gradient([ax(1, 0), ax(1, 1), ax(1, 2)], datasets, numbers)
    _draw_overparam([ax(1, 3), ax(2, 0)], datasets, numbers)
    _draw_teacher_lines([ax(2, 1), ax(2, 2)], datasets, numbers)  # the smallest d
    _draw_teacher_summary(ax(2, 3), numbers)
    sgd, over = datasets["sample_complexity_sgd"], datasets["sample_complexity_overparam"]
    ds = ", ".join(str(d) for d, _ in _values(sgd, "d"))
    dk, tk = fixed_param(over, "d"), fixed_param(over, "t_max")
    fig.suptitle(
        "Phase retrieval: how many samples each algorithm needs. alpha_IT = 1 < alpha_AMP = 1.13 "
        "(d -> infinity) < persistent SGD < over-parametrised GD (K = d) < GD\n"
        f"at d = {dk}, horizon t = {tk:g} (random start, "
        "lr 0.02, success |S - S*|/|S*| < 0.1); and p-SGD < GD from a warm start m0 = 0.2 at "
        f"d = {ds}, horizon t = 50 (lr 0.025, success m(50) > 0.9).\n"
        "alpha_1/2: where half of the seeds recover (refined in alpha); bands: 95 %",
        fontsize=10,
    )
    return fig


FIGURE = Figure(
    name="sample_complexity",
    title="Phase retrieval's sample complexities: IT, AMP, persistent SGD, (over-param.) GD (Zdeborová talk)",
    grids=(
        "sample_complexity_amp",
        "sample_complexity_gamp",
        "sample_complexity_sgd",
        "sample_complexity_overparam",
        "sample_complexity_random",
        "sample_complexity_teacher",
    ),
    analyse=analyse,
    draw=draw,
    small_note="SGD/GD at d = 100 only, 2 refinement levels; over-param. GD and p-SGD (tau = 1) at d = 20, "
    "t = 300, K = 1, d; "
    "teacher: d = 100, fresh and teacher 0",
)
