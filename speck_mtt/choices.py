"""The closed sets of names that options and recipes take, in a module that imports nothing, so
`speck-mtt --help` and a usage error can offer them as choices without importing torch; the
library derives its own checks from these (docs/design.md#layers)."""

from __future__ import annotations

from enum import Enum


class Method(str, Enum):
    """Training methods: standard (sdt), network mixed (nmt) and mixed time-step training (mtt),
    random-latency training (slt)."""

    sdt = "sdt"
    nmt = "nmt"
    mtt = "mtt"
    slt = "slt"


class Loss(str, Enum):
    ce = "ce"  # cross-entropy of the time-mean output
    tet = "tet"  # temporal efficient training: a loss per time step


class Phase(str, Enum):
    base = "base"
    bias_removal = "bias-removal"  # absorb BN, drop the bias, fine-tune


class Target(str, Enum):
    sim = "sim"
    speck2e = "speck2e"


class Backend(str, Enum):
    sim = "sim"
    speck2e = "speck2e"


class ExportFormat(str, Enum):
    nir = "nir"


class Energy(str, Enum):
    """What the stage rates of the configuration search count."""

    spikes = "spikes"
    synops = "synops"


class Rates(str, Enum):
    """Where the configuration search takes its stage rates from."""

    fit = "fit"
    uniform = "uniform"


class Dataset(str, Enum):
    """Every dataset speck_mtt.data.registry describes (tests check that the two agree)."""

    nmnist = "nmnist"
    nmnist_sim = "nmnist-sim"
    nmnist_real800 = "nmnist-real800"
    gesture = "gesture"
    gesture_sim = "gesture-sim"
    cifar10dvs = "cifar10dvs"
    cifar10dvs_sim = "cifar10dvs-sim"


def values(choice: type[Enum]) -> tuple[str, ...]:
    return tuple(c.value for c in choice)
