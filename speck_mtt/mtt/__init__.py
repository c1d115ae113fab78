"""Mixed Time-step Training: temporal transformation, temporal configurations, losses."""

from .ttm import TTM, group_bounds, resample_time

__all__ = ["TTM", "group_bounds", "resample_time"]
