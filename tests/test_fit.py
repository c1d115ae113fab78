import pytest
import sinabs.layers as sl
from torch import nn

from speck_mtt.errors import FitError
from speck_mtt.models.neurons import multistep_if
from speck_mtt.chip.layout import convert


def _conv(c_in, c_out, k=3, stride=1, padding=1, bias=False):
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=bias)


def _problems(snn, input_shape, target="speck2e"):
    with pytest.raises(FitError) as info:
        convert(snn, input_shape, target=target, arch="probe")
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + len(info.value.problems)  # a header, then one line per problem
    return [str(p) for p in info.value.problems]


def _one(problems, *words):
    hits = [p for p in problems if all(w in p for w in words)]
    assert len(hits) == 1, (words, problems)
    return hits[0]


def test_too_many_channels():
    line = _one(_problems(nn.Sequential(_conv(2, 1100, k=1, padding=0), multistep_if()), (2, 4, 4)),
                "output channels")
    assert "1100" in line and "1024" in line and "layer 0: 0 (Conv2d 2->1100" in line


def test_linear_after_large_map():
    snn = nn.Sequential(_conv(2, 2), multistep_if(), nn.Flatten(), nn.Linear(2 * 32 * 32, 10, bias=False),
                        multistep_if())
    line = _one(_problems(snn, (2, 32, 32)), "map before this Linear")
    assert "32x32" in line and "16x16" in line and "pooling" in line and "(Linear 2048->10)" in line


def test_output_map_too_large():
    line = _one(_problems(nn.Sequential(_conv(2, 2), multistep_if()), (2, 128, 128)), "output map")
    assert "128x128" in line and "64x64" in line


def test_unsupported_stride_and_pool():
    snn = nn.Sequential(_conv(2, 4, stride=3), multistep_if(), sl.SumPool2d(3), _conv(4, 4), multistep_if())
    problems = _problems(snn, (2, 36, 36))
    assert "3x3" in _one(problems, "stride")
    assert "is 3, limit one of (1, 2, 4)" in _one(problems, "output pooling")


def test_pooling_with_other_stride_is_refused_before_sinabs():
    snn = nn.Sequential(_conv(2, 4), multistep_if(), nn.AvgPool2d(2, stride=1), _conv(4, 4), multistep_if())
    line = _one(_problems(snn, (2, 8, 8), target="sim"), "the pooling")
    assert "stride (1, 1)" in line


def test_kernel_and_neuron_memory():
    snn = nn.Sequential(_conv(256, 512), multistep_if())
    line = _one(_problems(snn, (256, 8, 8)), "kernel memory")
    assert "2,097,152" in line and "65,536" in line
    line = _one(_problems(nn.Sequential(_conv(2, 128), multistep_if()), (2, 64, 64)), "neuron memory")
    assert "524,288" in line and "65,536" in line


class Branches(nn.Module):
    """One layer feeding three: a fan-out of 3."""

    def __init__(self):
        super().__init__()
        self.c0, self.n0 = _conv(2, 4), multistep_if()
        self.c1, self.n1 = _conv(4, 4), multistep_if()
        self.c2, self.n2 = _conv(4, 4), multistep_if()
        self.c3, self.n3 = _conv(4, 4), multistep_if()

    def forward(self, x):
        h = self.n0(self.c0(x))
        return self.n1(self.c1(h)), self.n2(self.c2(h)), self.n3(self.c3(h))


def test_fan_out():
    line = _one(_problems(Branches(), (2, 8, 8)), "fan-out")
    assert "is 3, limit 2" in line and "layer 0: c0" in line


def test_bias_and_bn_and_layer_types_all_reported_at_once():
    snn = nn.Sequential(_conv(2, 4, bias=True), nn.BatchNorm2d(4), multistep_if(), nn.MaxPool2d(2),
                        _conv(4, 4), nn.ReLU(), _conv(4, 4), sl.IAF())
    problems = _problems(snn, (2, 8, 8), target="sim")
    assert len(problems) == 5
    assert "--phase bias-removal" in _one(problems, "the bias")
    assert "--phase bias-removal" in _one(problems, "BatchNorm")
    assert "MaxPool2d" in _one(problems, "layer type", "MaxPool2d")
    assert "ReLU" in _one(problems, "layer type", "ReLU")
    assert "IAFSqueeze" in _one(problems, "neuron type")


def test_more_layers_than_cores():
    layers = []
    for _ in range(10):
        layers += [_conv(2, 2, k=1, padding=0), multistep_if()]
    line = _one(_problems(nn.Sequential(*layers), (2, 4, 4)), "number of layers")
    assert "is 10, limit 9" in line


def test_no_core_assignment():
    """Three layers that each need a 64Ki-kernel core, of which Speck2e has two."""
    layers = []
    for _ in range(3):
        layers += [_conv(64, 64), multistep_if()]
    line = _one(_problems(nn.Sequential(*layers), (64, 8, 8)), "core assignment")
    assert "layer 0 fits cores [5, 6]" in line


def test_sim_target_keeps_hardware_problems_without_raising():
    layout = convert(nn.Sequential(_conv(2, 2), multistep_if()), (2, 128, 128), target="sim")
    assert not layout.artifact["fits_chip"] and "output map" in layout.artifact["fit_problems"][0]
    assert layout.artifact["layers"][0]["core"] is None


def test_sinabs_structure_error_is_one_line():
    snn = nn.Sequential(_conv(2, 4), multistep_if(), _conv(4, 4))  # weight layer must be followed by a neuron
    snn = nn.Sequential(*snn, nn.Flatten())
    problems = _problems(snn, (2, 8, 8), target="sim")
    assert len(problems) == 1 and "refused by sinabs" in problems[0]


def test_input_pooling_limits():
    snn = nn.Sequential(nn.AvgPool2d(8), _conv(2, 4), multistep_if())
    line = _one(_problems(snn, (2, 128, 128)), "input pooling")
    assert "is 8, limit one of (1, 2, 4)" in line
    line = _one(_problems(nn.Sequential(nn.AvgPool2d(2), _conv(2, 4), multistep_if()), (2, 256, 256), "sim"),
                "DVS layer")
    assert "2x256x256" in line and "2x128x128" in line
