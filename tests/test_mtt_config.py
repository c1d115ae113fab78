"""Temporal configurations: ranges, per-method shape, reproducible generator state."""

import pytest

from speck_mtt.errors import SpeckMttError
from speck_mtt.mtt.config import ConfigSampler


def test_mtt_draws_respect_range_and_keep_input_stage():
    s = ConfigSampler("mtt", n_stages=4, t_min=2, t_max=7, t_input=10, draws=3, input_stage="keep", seed=1)
    seen = set()
    for _ in range(300):
        it = s.iteration()
        assert len(it) == 3
        for c in it:
            assert len(c) == 4 and c[0] == 10
            assert all(2 <= t <= 7 for t in c[1:])
            seen.update(c[1:])
    assert seen == set(range(2, 8))  # both ends inclusive


def test_mtt_draw_rule_draws_every_stage_independently():
    s = ConfigSampler("mtt", n_stages=3, t_min=1, t_max=10, t_input=10, input_stage="draw", seed=0)
    configs = [s.sample() for _ in range(200)]
    assert all(1 <= t <= 10 for c in configs for t in c)
    assert any(c[0] != 10 for c in configs)
    assert any(len(set(c)) > 1 for c in configs)


@pytest.mark.parametrize("method,per_iter", [("sdt", 1), ("nmt", 3), ("slt", 1)])
def test_uniform_methods(method, per_iter):
    s = ConfigSampler(method, n_stages=4, t_min=1, t_max=6, t_input=6, draws=3, t_fixed=5, seed=0)
    assert s.draws_per_iteration == per_iter
    for _ in range(50):
        for c in s.iteration():
            assert len(set(c)) == 1 and 1 <= c[0] <= 6
            if method == "sdt":
                assert c == [5] * 4


def test_generator_state_resumes_the_same_stream():
    a = ConfigSampler("mtt", 4, 1, 10, 10, seed=3)
    for _ in range(5):
        a.iteration()
    state = a.state_dict()
    expected = [a.iteration() for _ in range(5)]
    b = ConfigSampler("mtt", 4, 1, 10, 10, seed=99)
    b.load_state_dict(state)
    assert [b.iteration() for _ in range(5)] == expected


def test_cost_ratio_matches_spec_formula():
    assert ConfigSampler("mtt", 4, 1, 10, 10, draws=3).expected_cost_ratio() == pytest.approx(1.65)


@pytest.mark.parametrize("kw", [dict(t_min=0, t_max=5), dict(t_min=6, t_max=5), dict(draws=0),
                                dict(method="xyz"), dict(input_stage="first")])
def test_bad_settings_are_one_line_errors(kw):
    args = dict(method="mtt", n_stages=3, t_min=1, t_max=5, t_input=5) | kw
    with pytest.raises(SpeckMttError) as e:
        ConfigSampler(**args)
    assert "\n" not in str(e.value)


def test_finer_input_frames_draw_stage_one_up_to_them_and_leave_the_rest_alone():
    fine = ConfigSampler("mtt", 4, 1, 10, t_input=30, draws=3, input_stage="draw", seed=3)
    draws = [fine.sample() for _ in range(400)]
    firsts = [c[0] for c in draws]
    assert min(firsts) == 1 and max(firsts) == 30 and all(t <= 10 for c in draws for t in c[1:])
    plain = ConfigSampler("mtt", 4, 1, 10, t_input=10, draws=3, input_stage="draw", seed=3)
    assert all(max(plain.sample()) <= 10 for _ in range(100))
    sdt = ConfigSampler("sdt", 4, 1, 10, t_input=30)
    assert sdt.sample() == [10] * 4  # SDT's stage 1 groups the fine frames down to T_max
