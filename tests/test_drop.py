"""The paired accuracy drop (contracts.drop) on hand-counted samples."""

import math

import numpy as np
import pytest

from speck_mtt.contracts.drop import paired_drop


def test_drop_and_its_mcnemar_error_from_the_discordant_samples():
    # 10 samples: both right on 6, only the reference on 3, only the other on 1
    ref = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    other = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 1], bool)
    d = paired_drop(ref, other)
    assert (d.reference_only, d.other_only, d.n_samples) == (3, 1, 10)
    assert d.drop_pp == pytest.approx(20.0)  # 90 % - 70 %
    assert d.se_pp == pytest.approx(100 * math.sqrt(3 + 1 - (3 - 1) ** 2 / 10) / 10)
    same = paired_drop(ref, ref)
    assert same.drop_pp == 0 and same.se_pp == 0  # identical runs: no drop and no doubt about it


def test_unpaired_inputs_are_refused_and_empty_ones_are_nan():
    with pytest.raises(ValueError, match="cannot be paired"):
        paired_drop(np.ones(3, bool), np.ones(4, bool))
    assert math.isnan(paired_drop(np.ones(0, bool), np.ones(0, bool)).drop_pp)
