import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from plo_risk.monitor import bin_shares, psi, quantile_edges

samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=5, max_size=200).map(
    np.array
)


@given(samples)
def test_psi_of_sample_against_itself_is_zero(x):
    e = quantile_edges(x)
    assert psi(bin_shares(x, e), bin_shares(x, e)) == 0.0


@given(samples, samples)
def test_psi_is_non_negative(x, y):
    e = quantile_edges(x)
    assert psi(bin_shares(x, e), bin_shares(y, e)) >= 0.0


@given(samples, samples, st.randoms())
def test_psi_invariant_to_row_order(x, y, rnd):
    e = quantile_edges(x)
    y2 = y.copy()
    rnd.shuffle(y2)
    a = psi(bin_shares(x, e), bin_shares(y, e))
    b = psi(bin_shares(x, e), bin_shares(y2, e))
    assert abs(a - b) < 1e-12
