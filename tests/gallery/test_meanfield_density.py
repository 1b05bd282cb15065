"""The mean-field density figure, --small: particles approach the reduced dynamics as K grows."""

import pytest

from gallery import make
from gallery.figures.meanfield_density import FIGURE


@pytest.mark.slow
def test_meanfield_density_small(tmp_path):
    made = make(FIGURE, small=True, results=tmp_path, progress=False)
    assert made.png.stat().st_size > 20_000
    n = made.numbers
    # per unit, particles against the reduced dynamics of the same units: m_j differs by
    # ~K^-1/2 (Arnaboldi et al.'s p^-1/2; measured -0.42 +- 0.05 over K = 50...400, 4 seeds).
    # 0.2 or 3 standard errors around -1/2 excludes no convergence (0) and 1/K.
    slope, err = n["unit_slope"], n["unit_slope_error"]
    assert err < 0.15
    assert abs(slope + 0.5) < max(3 * err, 0.2), (slope, err)
    # the risk averages the units' uncorrelated deviations: it converges faster, towards 1/K
    # (measured -0.79 +- 0.09); it must be steeper than the units' law by more than the errors
    # allow by chance, and not steeper than 1/K by more than 0.3
    risk_slope, risk_err = n["deviation_slope"], n["deviation_slope_error"]
    assert -1.3 < risk_slope < slope - 0.15, (risk_slope, risk_err, slope)
    # and it is small: 0.25% of the risk at K = 50 (measured), never above 1%
    assert max(n["deviation"]) < 0.01
    # the seed spread of the particle risk shrinks (measured slope -0.37 +- 0.11 with 4 seeds:
    # only its sign and rough size are resolved)
    assert -1.0 < n["spread_slope"] < -0.15
