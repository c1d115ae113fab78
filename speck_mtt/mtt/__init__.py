"""Mixed Time-step Training: temporal transformation, temporal configurations, losses."""

from .config import METHODS, ConfigSampler
from .losses import LOSSES, make_loss, mean_output_ce, tet_loss
from .ttm import TTM

__all__ = ["LOSSES", "METHODS", "TTM", "ConfigSampler", "make_loss", "mean_output_ce", "tet_loss"]
