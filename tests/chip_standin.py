"""A Speck2e chip for tests/fake_samna.py: it runs the configuration the fake device holds
(`Board.applied[-1]`), read field by field as samna names them, so a mistake in any field the
neuron rule depends on changes what it answers. Written from samna's configuration fields alone,
independently of speck_mtt's simulator.

Per input Spike (written to the core it names) every neuron its kernel reaches takes the weight
(samna holds kernels as (out, in, x, y)), in (channel, row, column) order: the 16-bit state
saturates; at or above threshold_high the neuron spikes once and subtracts threshold_high, or
drops to 0 when return_to_zero is set; then it is clamped at threshold_low. Spikes are sum-pooled
to each enabled destination core, first in first out; monitored cores answer them as output
Spikes stamped with the input event's time. With leak_enable, each core adds its biases to every
state on each tick of a slow clock (`tick_us`, our assumption: samna sets the real rate), up to
`tail_us` after the last input. Applying a configuration loads its neurons_initial_value (how
sinabs resets states). ReadNeuronValue is not modelled: use it for IF-voting nets only.
`mistake(config)` edits the copy the chip runs, to show that a test notices.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable

import numpy as np

import fake_samna

STATE_MIN, STATE_MAX = -(2**15), 2**15 - 1


def _xy(value) -> tuple[int, int]:
    return (int(value["x"]), int(value["y"])) if isinstance(value, dict) else (int(value.x), int(value.y))


class StandInChip:
    def __init__(self, board: fake_samna.Board, mistake: Callable | None = None, tick_us: int = 1000,
                 tail_us: int = 100_000):
        self.board, self.mistake, self.tick_us, self.tail_us = board, mistake, tick_us, tail_us
        self.loaded = 0  # how many configurations had been applied when the states were last loaded
        board.respond = self.respond

    def _load(self) -> None:
        """A fresh configuration: its copy (with the mistake, if any) and its initial states."""
        self.config = copy.deepcopy(self.board.applied[-1])
        if self.mistake is not None:
            self.mistake(self.config)
        self.state = {}
        for core, layer in enumerate(self.config.cnn_layers):
            if layer.weights:
                self.state[core] = np.array(layer.neurons_initial_value, np.int64).transpose(0, 2, 1).copy()  # (c, y, x)
        self.loaded = len(self.board.applied)

    def respond(self, events: list) -> list[list]:
        if len(self.board.applied) != self.loaded:
            self._load()
        spikes = [e for e in events if isinstance(e, fake_samna.Spike)]
        if not spikes:
            return []
        out: list = []
        clock = 0
        for event in spikes:
            clock = self._leak_until(event.timestamp, clock, out)
            self._deliver(deque([(event.layer, event.feature, event.y, event.x)]), event.timestamp, out)
        self._leak_until(spikes[-1].timestamp + self.tail_us, clock, out)
        return [out] if out else []

    def _fire(self, core: int, v: int) -> tuple[int, bool]:
        layer = self.config.cnn_layers[core]
        v = min(max(v, STATE_MIN), STATE_MAX)
        spiked = v >= layer.threshold_high
        if spiked:
            v = 0 if layer.return_to_zero else v - layer.threshold_high
        return max(v, layer.threshold_low), spiked

    def _emit(self, core: int, fired: list[tuple[int, int, int]], t: int, queue: deque, out: list) -> None:
        layer = self.config.cnn_layers[core]
        for c, y, x in fired:
            if layer.monitor_enable:
                out.append(fake_samna.Spike(layer=core, feature=c, x=x, y=y, timestamp=t))
            for dest in layer.destinations:
                if not dest.enable:
                    continue
                size = self.config.cnn_layers[dest.layer].dimensions["input_shape"]["size"]
                py, px = y // dest.pooling, x // dest.pooling
                if py < size["y"] and px < size["x"]:
                    queue.append((dest.layer, c, py, px))

    def _deliver(self, queue: deque, t: int, out: list) -> None:
        while queue:
            core, ci, y, x = queue.popleft()
            layer = self.config.cnn_layers[core]
            dims = layer.dimensions
            k = dims["kernel_size"]
            (sx, sy), (px, py) = _xy(dims["stride"]), _xy(dims["padding"])
            state = self.state[core]
            c_out, h_out, w_out = state.shape
            targets = []
            for ky in range(k):
                for kx in range(k):
                    ty, tx = y + py - ky, x + px - kx
                    if ty < 0 or tx < 0 or ty % sy or tx % sx or ty // sy >= h_out or tx // sx >= w_out:
                        continue
                    targets += [(co, ty // sy, tx // sx, layer.weights[co][ci][kx][ky]) for co in range(c_out)]
            fired = []
            for co, oy, ox, w in sorted(targets, key=lambda row: row[:3]):
                state[co, oy, ox], spiked = self._fire(core, int(state[co, oy, ox]) + w)
                if spiked:
                    fired.append((co, oy, ox))
            self._emit(core, fired, t, queue, out)

    def _leak_until(self, t: int, clock: int, out: list) -> int:
        """Slow-clock ticks up to time t: biases added to every state of the leaking cores."""
        leaking = [c for c in self.state if self.config.cnn_layers[c].leak_enable]
        while leaking and clock + self.tick_us <= t:
            clock += self.tick_us
            for core in leaking:
                layer = self.config.cnn_layers[core]
                state = self.state[core]
                v = np.clip(state + np.asarray(layer.biases, np.int64)[:, None, None], STATE_MIN, STATE_MAX)
                spiked = v >= layer.threshold_high
                v[spiked] = 0 if layer.return_to_zero else v[spiked] - layer.threshold_high
                state[...] = np.maximum(v, layer.threshold_low)
                queue: deque = deque()
                self._emit(core, [tuple(map(int, i)) for i in np.argwhere(spiked)], clock, queue, out)
                self._deliver(queue, clock, out)
        return clock if leaking else t
