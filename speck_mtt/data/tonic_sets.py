"""Thin subclasses of tonic's dataset classes that read files already on disk and never download.

tonic decides a split is present only when its archive AND enough extracted files exist, and
otherwise downloads (which hangs or fails offline). Here `_check_exists` looks only at the
extracted folder and `download` raises a one-line DataError naming the expected layout, so no code
path can reach the network. Everything else (folder walk, decoding, labels) is tonic's own code.
"""

from __future__ import annotations

import os
from pathlib import Path

import tonic

from ..errors import DataError


class _OfflineMixin:
    """Keep tonic's folder name (e.g. NMNIST/) under save_to and refuse to download."""

    tonic_folder: str
    layout: str = ""
    file_type: str = ""

    @property
    def location_on_system(self) -> str:
        return self._location

    @location_on_system.setter
    def location_on_system(self, value: str) -> None:
        # tonic sets save_to/<class name>; our subclasses must read tonic's own folder name
        self._location = os.path.join(os.path.dirname(value), self.tonic_folder)

    def _check_exists(self) -> bool:
        folder = Path(self.location_on_system, self.folder_name)
        return folder.is_dir() and any(folder.rglob(f"*{self.file_type}"))

    def download(self) -> None:
        raise DataError(
            f"no {self.tonic_folder} files under {Path(self.location_on_system, self.folder_name)}: "
            f"expected {Path(os.path.dirname(self.location_on_system), self.layout)}"
            " (speck-mtt never downloads; put the extracted files there)"
        )

    def _sort(self, *extra: str) -> None:
        """tonic does not sort its folder walk everywhere: sort by path for reproducible subsets."""
        cols = [self.data, self.targets] + [getattr(self, name) for name in extra]
        rows = sorted(zip(*cols), key=lambda r: r[0])
        for name, col in zip(["data", "targets", *extra], zip(*rows) if rows else [[]] * len(cols)):
            setattr(self, name, list(col))


class NMNISTFiles(_OfflineMixin, tonic.datasets.NMNIST):
    """tonic NMNIST over save_to/NMNIST/{Train,Test}/<digit>/<id>.bin (real or nmnist-sim)."""

    tonic_folder = "NMNIST"
    file_type = ".bin"
    layout = "NMNIST/{Train,Test}/<digit 0-9>/<id>.bin (the extracted N-MNIST Train.zip/Test.zip)"


class DVSGestureFiles(_OfflineMixin, tonic.datasets.DVSGesture):
    """tonic DVSGesture over save_to/DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy."""

    tonic_folder = "DVSGesture"
    file_type = ".npy"
    layout = "DVSGesture/ibmGestureTrain|ibmGestureTest/userNN_<lighting>/<label>.npy (tonic's preprocessed .npy)"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sort("users", "lighting")


class CIFAR10DVSFiles(_OfflineMixin, tonic.datasets.CIFAR10DVS):
    """tonic CIFAR10DVS over save_to/CIFAR10DVS/<class>/*.aedat4 (no official split)."""

    tonic_folder = "CIFAR10DVS"
    file_type = ".aedat4"
    layout = "CIFAR10DVS/<airplane|automobile|...|truck>/<id>.aedat4 (the extracted per-class zips)"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sort()
