"""Dims and outputs shared by the two-layer kernels (`ode`, `meanfield`, `sgd_online`).

Declared once here and picked by each kernel, so a theory and its simulation label the
same quantity the same way (``docs/twolayer.md``).
"""

from __future__ import annotations

import numpy as np

from kernels.schema import Dim, Output
from kernels.timegrid import saved_times
from kernels.twolayer.model import REGIONS, time_unit

DIMS = {
    "time": Dim("time", saved_times, units=time_unit),
    "student": Dim("student hidden unit", lambda p: np.arange(p.K)),
    "student2": Dim("student hidden unit", lambda p: np.arange(p.K)),
    "teacher": Dim("teacher hidden unit", lambda p: np.arange(p.M)),
    "teacher2": Dim("teacher hidden unit", lambda p: np.arange(p.M)),
    "unit": Dim(
        "student unit", lambda p: np.arange(p.save_particles), description="the first save_particles of K"
    ),
}

OUTPUTS = {
    "risk": Output(
        ("time",),
        "population risk",
        description="E[(f* - f)^2]/2, closed form from the overlaps (erf, relu, linear); excludes the "
        "label-noise floor noise/2",
    ),
    "Q": Output(("time", "student", "student2"), "student-student overlap Q", description="Q = W W^T / d"),
    "M": Output(("time", "student", "teacher"), "student-teacher overlap M", description="M = W W*^T / d"),
    "P": Output(
        ("teacher", "teacher2"),
        "teacher-teacher overlap P",
        description="P = W* W*^T / d; constant: the teacher is fixed",
    ),
    "v": Output(("time", "student"), "student second-layer weights v"),
    # per unit: the first save_particles student units
    "m": Output(("time", "unit", "teacher"), "teacher overlap m_jr = w_j.w*_r / d", when="save_particles"),
    "q": Output(("time", "unit"), "self overlap q_j = |w_j|^2 / d", when="save_particles"),
    "a": Output(
        ("time", "unit"),
        "second-layer weight v_j",
        description="the student's v_j of kernels/twolayer/model.py (= a_j / K for the mean-field a_j)",
        when="save_particles",
    ),
    # categorical: a code per region of REGIONS, named in flag_meanings
    "region": Output(
        (),
        "region",
        description="the phase diagram of Veiga et al. 2022 in (kappa, delta); 0 none (no scalings), "
        "1 green, 2 blue, 3 orange, 4 red",
        flags=tuple(sorted(REGIONS, key=REGIONS.get)),
    ),
}

ATTRS = {
    "risk": "E[(f* - f)^2]/2 against the noiseless teacher; the label-noise floor noise/2 is NOT included",
    "noise": "label-noise variance Delta",
    "committee": "saad_solla: v = v* = 1; mean: v = 1/K, v* = 1/M (docs/twolayer.md)",
}
