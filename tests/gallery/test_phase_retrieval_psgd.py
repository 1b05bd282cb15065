"""The phase-retrieval figure, --small: persistent SGD recovers the signal where GD stalls."""

import pytest

from gallery import make
from gallery.figure import grid_path
from gallery.figures.phase_retrieval_psgd import FIGURE
from sweeper.grid_file import load_spec


@pytest.mark.slow
def test_phase_retrieval_psgd_small(tmp_path):
    made = make(FIGURE, small=True, results=tmp_path, progress=False)
    assert made.png.stat().st_size > 20_000
    cases = made.numbers["cases"]
    gd, psgd = cases["gd, alpha=3"], cases["psgd, alpha=3, tau=1"]
    # DMFT: p-SGD reaches m = 1 (measured 1.000 by t ~ 30), GD stalls (measured 0.63 +- 0.10 at
    # t = 40; docs/dmft.md §7.5 finds 0.5 < m < 0.8 at t = 50 with 3000 trajectories)
    assert psgd["dmft_final_m"][0] > 0.9
    assert gd["dmft_final_m"][0] < 0.7
    # finite d (d = 500, lr 0.025): GD stalls in every seed (measured 0.52 +- 0.08)
    assert gd["sim_lr=0.025_final_m"][0] < 0.7
    assert gd["sim_lr=0.025_seeds_above_0.9"] == 0.0
    # the flow limit's semi-implicit step also recovers (its lead at the escape, 0.80 against
    # 0.74 at t = 10, is within the 2-block errors here: reported on the figure, not asserted)
    assert psgd["flow_semi_implicit_final_m"][0] > 0.9


def test_phase_retrieval_psgd_grids_load():
    # quick: the full and --small grids parse, and the small ones are the same grids reduced
    for stem in FIGURE.grids:
        full, small = load_spec(grid_path(stem)), load_spec(grid_path(stem, small=True))
        assert full.name == small.name == stem and full.kernel == small.kernel
        assert small.n_points <= full.n_points
