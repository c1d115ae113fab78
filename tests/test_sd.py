import math

import numpy as np
import pytest

from speck_mtt.contracts.sd import spike_difference


def test_identical_is_zero():
    c = np.array([[3, 0, 1], [0, 5, 2]])
    sd = spike_difference(c, c)
    assert sd.pooled == 0 and sd.per_sample_mean == 0 and sd.n_samples == 2


def test_disjoint_is_one():
    a = np.array([[4, 0], [0, 0]])
    b = np.array([[0, 4], [0, 0]])
    sd = spike_difference(a, b)
    assert sd.pooled == pytest.approx(2.0)  # |4-0| + |0-4| over 4: disjoint outputs double-count
    assert sd.n_undefined == 1


def test_disjoint_output_one_sided_is_one():
    ref = np.array([[2, 3]])
    assert spike_difference(np.zeros_like(ref), ref).pooled == pytest.approx(1.0)


def test_pooled_formula_by_hand():
    s = np.array([[1, 2], [3, 0]])
    r = np.array([[2, 2], [1, 1]])
    # N(S) = (4, 2), N(ref) = (3, 3): (1 + 1) / 6
    out = spike_difference(s, r)
    assert out.pooled == pytest.approx(2 / 6)
    assert out.per_sample_mean == pytest.approx((1 / 4 + 3 / 2) / 2)


def test_empty_reference_is_nan():
    assert math.isnan(spike_difference(np.ones((1, 3)), np.zeros((1, 3))).pooled)


def test_shape_mismatch():
    with pytest.raises(ValueError):
        spike_difference(np.ones((2, 3)), np.ones((2, 4)))
