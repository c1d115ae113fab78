"""speck-mtt: Mixed Time-step Training of spiking networks and deployment to SynSense Speck.

Layout: data/ (events in, frames) -> models/ + mtt/ (training) -> speck/ (BN absorption,
DynapCNN layout, devkit) -> eventsim/ (event-driven simulator, spike difference) -> measure.
"""

__version__ = "0.1.0"
