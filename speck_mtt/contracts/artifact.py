"""The deploy artifact's tag (docs/design.md#deploy-artifact): the layout writes it, the simulator
and the devkit check it, so it is defined here once."""

FORMAT = "speck-mtt-layout"
VERSION = 1
