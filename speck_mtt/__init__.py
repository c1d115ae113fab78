"""speck-mtt: Mixed Time-step Training of spiking networks and deployment to SynSense Speck.

Layout (docs/design.md#layers): data/ (events in, frames) -> models/ + mtt/ (the networks, the
training method) -> training/ (the loop, BN absorption, bias removal) -> chip/ (DynapCNN layout,
deploy, the devkit, NIR) and eventsim/ (the event-driven simulator) -> measure, report -> commands/
(the `speck-mtt` command).
"""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (tool.setuptools.dynamic)
