import random

import pytest
import torch

from speck_mtt.mtt.ttm import TTM
from speck_mtt.timegroups import group_bounds, resample_time


def groups(t_in, t_out):
    b = group_bounds(t_in, t_out)
    return [list(range(b[i], b[i + 1])) for i in range(len(b) - 1)]


def test_spec_examples():
    assert groups(10, 3) == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert groups(6, 4) == [[0], [1, 2], [3], [4, 5]]
    assert groups(3, 10) == groups(10, 3)  # the grouping is symmetric in direction


def test_downsample_sums_groups():
    x = torch.arange(10.0).reshape(1, 10, 1)
    y = resample_time(x, 3)
    assert y.flatten().tolist() == [0 + 1 + 2, 3 + 4 + 5 + 6, 7 + 8 + 9]


def test_upsample_replicates():
    x = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    assert resample_time(x, 10).flatten().tolist() == [1, 1, 1, 2, 2, 2, 2, 3, 3, 3]


def test_identity_is_same_tensor():
    x = torch.rand(2, 5, 3)
    assert resample_time(x, 5) is x


@pytest.mark.parametrize("seed", range(5))
def test_random_pairs_cover_and_preserve_sums(seed):
    rng = random.Random(seed)
    for _ in range(50):
        t_in, t_out = rng.randint(1, 40), rng.randint(1, 40)
        b = group_bounds(t_in, t_out)
        assert b[0] == 0 and b[-1] == max(t_in, t_out)
        assert all(b[i + 1] > b[i] for i in range(len(b) - 1)), "every group is non-empty"
        x = torch.rand(2, t_in, 3, 4)
        y = TTM()(x, t_out)
        assert y.shape == (2, t_out, 3, 4)
        if t_in >= t_out:
            torch.testing.assert_close(y.sum(1), x.sum(1))
        else:
            # every output frame is a copy of one input frame, each input frame used at least once
            torch.testing.assert_close(resample_time(y, t_in) / torch.tensor(
                [b[i + 1] - b[i] for i in range(t_in)]).view(1, -1, 1, 1), x)


def test_gradient_flows_through_ttm():
    x = torch.rand(1, 7, 2, requires_grad=True)
    resample_time(x, 3).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_bad_t():
    with pytest.raises(ValueError):
        group_bounds(0, 3)


def test_random_groups_are_contiguous_nonempty_and_keep_every_count():
    from speck_mtt.timegroups import resample_time_random
    t_in, t_out = 12, 5
    x = (2.0 ** torch.arange(t_in)).reshape(1, t_in, 1).repeat(64, 1, 1)  # frame i holds 2**i: sums decode
    y = resample_time_random(x, t_out, generator=torch.Generator().manual_seed(0))
    assert y.shape == (64, t_out, 1) and torch.equal(y.sum(1), x.sum(1))
    cuts = set()
    for row in y[:, :, 0].long().tolist():
        frames = [[i for i in range(t_in) if v >> i & 1] for v in row]  # which frames each group summed
        assert all(frames) and sum(frames, []) == list(range(t_in))  # non-empty, contiguous, in order
        cuts.add(tuple(f[0] for f in frames))
    assert len(cuts) > 30  # cut per sample, not per batch
    assert torch.equal(resample_time_random(x, t_in), x)  # nothing to group: the regular resample
