"""Temporal configurations c = (T_1..T_S) per training method (docs/design.md#ttm-grouping).

- sdt: fixed T everywhere, one draw per iteration.
- nmt: one random T for the whole network per draw (MTT with a single stage), M draws.
- mtt: a random T per stage per draw, M draws per iteration; with input_stage="keep" the first
  stage keeps the number of input frames (event data) and only the later stages are drawn; with
  "draw" and input frames finer than T_max (t_input > t_max) stage 1 is drawn up to t_input.
- slt: one random latency t in [T_min, T_max] per batch, the whole network at t.

Draws come from a seeded torch.Generator whose state goes into the checkpoint, so a resumed
run draws exactly the configurations an uninterrupted run would have.
"""

from __future__ import annotations

import torch

from ..choices import Method, values
from ..errors import SpeckMttError

METHODS: tuple[str, ...] = values(Method)
INPUT_STAGE_RULES: tuple[str, ...] = ("keep", "draw")


class ConfigSampler:
    """Draws the temporal configurations of one training iteration."""

    def __init__(self, method: str, n_stages: int, t_min: int, t_max: int, t_input: int,
                 draws: int = 3, t_fixed: int | None = None, input_stage: str = "keep", seed: int = 0):
        if method not in METHODS:
            raise SpeckMttError(f"unknown training method {method!r}; choose one of {', '.join(METHODS)}")
        if input_stage not in INPUT_STAGE_RULES:
            raise SpeckMttError(f"input_stage must be one of {', '.join(INPUT_STAGE_RULES)}, got {input_stage!r}")
        if not 1 <= t_min <= t_max:
            raise SpeckMttError(f"impossible T range [{t_min}, {t_max}]: need 1 <= t_min <= t_max")
        if draws < 1:
            raise SpeckMttError(f"draws (M) must be >= 1, got {draws}")
        self.method = method
        self.n_stages = n_stages
        self.t_min, self.t_max, self.t_input = t_min, t_max, t_input
        self.draws = draws
        self.t_fixed = t_fixed if t_fixed is not None else t_max
        self.input_stage = input_stage
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def draws_per_iteration(self) -> int:
        return self.draws if self.method in ("mtt", "nmt") else 1

    def _uniform(self, n: int) -> list[int]:
        return torch.randint(self.t_min, self.t_max + 1, (n,), generator=self.generator).tolist()

    def sample(self) -> list[int]:
        """One configuration vector, one T per stage."""
        if self.method == "sdt":
            return [self.t_fixed] * self.n_stages
        if self.method in ("nmt", "slt"):
            return self._uniform(1) * self.n_stages
        if self.input_stage == "keep":
            return [self.t_input] + self._uniform(self.n_stages - 1)
        if self.t_input > self.t_max:  # finer input frames: stage 1 runs anywhere from t_min to them
            first = torch.randint(self.t_min, self.t_input + 1, (1,), generator=self.generator).tolist()
            return first + self._uniform(self.n_stages - 1)
        return self._uniform(self.n_stages)

    def iteration(self) -> list[list[int]]:
        """The configurations of one optimizer step (M for mtt/nmt, one for sdt/slt)."""
        return [self.sample() for _ in range(self.draws_per_iteration)]

    def expected_cost_ratio(self) -> float:
        """Forward/backward cost of one iteration relative to SDT at T_max (M*E[T]/T_max, docs/design.md#ttm-grouping)."""
        mean_t = (self.t_min + self.t_max) / 2
        if self.method == "sdt":
            return self.t_fixed / self.t_max
        if self.method == "slt":
            return mean_t / self.t_max
        return self.draws_per_iteration * mean_t / self.t_max

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
