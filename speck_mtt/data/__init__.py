"""Event data for speck-mtt: real datasets through tonic, built-in offline stand-ins, cached frames.

- DATASETS / DatasetInfo: sensor, classes, recipe T, augmentation and folder layout per dataset.
- resolve_dataset(name, data_dir): a real dataset whose files are absent from the default data dir
  falls back to its "-sim" stand-in with a warning; under a data dir given explicitly, or without a
  stand-in (cifar10dvs), it is a DataError naming the layout; half a dataset or a folder the
  layout does not name is a DataError, never a fallback.
- event_dataset(name, split, data_dir, limit): (events x/y/p/t (us) sorted, label); corrupt or
  malformed files raise DataError naming the file (fail loudly, never skipped).
- frame_dataset(name, split, n_frames, ...): (float32 (T, 2, H, W) counts, label) from a frame
  cache built once at cache_frames; coarser T via the TTM grouping (mtt.ttm.resample_time).
- default_data_dir(): $SPECK_MTT_DATA, else ./data (a path there that is not a folder is refused).
  Nothing is ever downloaded.
"""

from .datasets import EventDataset, event_dataset, resolve_dataset
from .frame_cache import FrameDataset, frame_dataset
from .functional.events import EVENT_DTYPE
from .registry import DATASETS, DatasetInfo, default_data_dir

__all__ = [
    "DATASETS", "DatasetInfo", "EVENT_DTYPE", "EventDataset", "FrameDataset", "default_data_dir",
    "event_dataset", "frame_dataset", "resolve_dataset",
]
