"""speck-mtt: Mixed Time-step Training of spiking networks and deployment to SynSense Speck.

    import speck_mtt as sm
    trained = sm.train("nmnist", method="mtt", quick=True, out="runs/nb")   # docs/python.md

The Python API (speck_mtt.api, loaded on first use so `import speck_mtt` does not import torch):
load_recipe, train, deploy, measure_deployed, export_nir, write_report. Layout
(docs/design.md#layers): data/ (events in, frames) -> models/ + mtt/ (the networks, the training
method) -> training/ (the loop, BN absorption, bias removal) -> chip/ (DynapCNN layout, deploy, the
devkit, NIR) and eventsim/ (the event-driven simulator) -> measure, report -> api -> commands/
(the `speck-mtt` command).
"""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (tool.setuptools.dynamic)

__all__ = ["Deployed", "Exported", "Measured", "Report", "Trained", "__version__", "deploy", "export_nir",
           "load_recipe", "measure_deployed", "train", "write_report"]


def __getattr__(name: str):
    """The API's names, imported when first used."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
