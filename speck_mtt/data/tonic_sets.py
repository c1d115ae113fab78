"""Thin subclasses of tonic's dataset classes that read files already on disk and never download.

tonic decides a split is present only when its archive AND enough extracted files exist, and
otherwise downloads (which hangs or fails offline). Here `_check_exists` looks only at the
extracted folder and `download` raises a one-line DataMissing naming the expected layout, so no code
path can reach the network. The folder walk and labels are ours (see _OfflineMixin): tonic's
misreads unexpected names. Decoding is tonic's own code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import tonic

from ..errors import DataError, DataMissing
from .functional.nmnist_bin import TIME_SORTABLE


class _OfflineMixin:
    """Keep tonic's folder name (e.g. NMNIST/) under save_to, refuse to download, and list the
    files ourselves: tonic's walk reads an N-MNIST label from the folder name's last character
    (a folder `10` becomes label 0), takes any name ending in "bin" and crashes on unexpected
    folders. Here every folder must be one the layout names, only the exact extension counts,
    hidden entries (.DS_Store, ._x.bin, temporary files) are skipped, and classes without a
    recording are listed in `empty_classes`."""

    tonic_folder: str
    layout: str = ""
    file_type: str = ""
    time_sortable: bool = True  # events carry full timestamps: out-of-order ones are sorted (with a warning)

    @property
    def location_on_system(self) -> str:
        return self._location

    @location_on_system.setter
    def location_on_system(self, value: str) -> None:
        # tonic sets save_to/<class name>; our subclasses must read tonic's own folder name
        self._location = os.path.join(os.path.dirname(value), self.tonic_folder)

    @property
    def root(self) -> Path:
        return Path(self.location_on_system, self.folder_name)

    def _check_exists(self) -> bool:
        return self.root.is_dir() and any(self.root.rglob(f"*{self.file_type}"))

    def download(self) -> None:
        raise DataMissing(
            f"no {self.tonic_folder} files under {self.root}: "
            f"expected {Path(os.path.dirname(self.location_on_system), self.layout)}"
            " (speck-mtt never downloads; put the extracted files there)"
        )

    def _refuse(self, path: Path, what: str) -> DataError:
        return DataError(f"{path}: {what}; expected {Path(os.path.dirname(self.location_on_system), self.layout)}")

    def _group(self, folder: Path) -> None:
        """Check one folder directly under the split folder (a class or user folder); raise if foreign."""

    def _label(self, file: Path) -> int:
        """The label of a recording inside a checked folder; raise if its name is not one."""
        return self.label_of_folder[file.parent.name]

    def _list_files(self) -> None:
        """data/targets sorted by path, from folders checked against the layout."""
        if not self._check_exists():
            self.download()
        self.data, self.targets = [], []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                if not folder.name.startswith(".") and folder.suffix == self.file_type:
                    raise self._refuse(folder, "a recording outside a class folder")
                continue
            self._group(folder)
            for file in sorted(folder.iterdir()):
                if file.name.startswith("."):
                    continue
                if file.is_dir():
                    raise self._refuse(file, "a folder inside a class folder")
                if file.suffix == self.file_type:
                    self.data.append(str(file))
                    self.targets.append(self._label(file))
        present = set(self.targets)
        self.empty_classes = [name for name, label in self.class_labels().items() if label not in present]

    def class_labels(self) -> dict[str, int]:
        return dict(self.label_of_folder)


class NMNISTFiles(_OfflineMixin, tonic.datasets.NMNIST):
    """tonic NMNIST over save_to/NMNIST/{Train,Test}/<digit>/<id>.bin (real or nmnist-sim)."""

    tonic_folder = "NMNIST"
    file_type = ".bin"
    time_sortable = TIME_SORTABLE
    layout = "NMNIST/{Train,Test}/<digit 0-9>/<id>.bin (the extracted N-MNIST Train.zip/Test.zip)"
    label_of_folder = {str(d): d for d in range(10)}

    def __init__(self, save_to: str, train: bool = True) -> None:
        tonic.dataset.Dataset.__init__(self, save_to)
        self.train, self.first_saccade_only, self.stabilize = train, False, False
        self.folder_name = self.train_folder if train else self.test_folder
        self._list_files()

    def _group(self, folder: Path) -> None:
        if folder.name not in self.label_of_folder:
            raise self._refuse(folder, "not a label folder (N-MNIST labels are the folders 0 to 9)")


class DVSGestureFiles(_OfflineMixin, tonic.datasets.DVSGesture):
    """tonic DVSGesture over save_to/DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy."""

    tonic_folder = "DVSGesture"
    file_type = ".npy"
    layout = "DVSGesture/ibmGestureTrain|ibmGestureTest/userNN_<lighting>/<label>.npy (tonic's preprocessed .npy)"
    label_of_folder: dict[str, int] = {}
    _USER = re.compile(r"^user(\d+)_(.+)$")

    def __init__(self, save_to: str, train: bool = True) -> None:
        tonic.dataset.Dataset.__init__(self, save_to)
        self.train = train
        self.folder_name = "ibmGestureTrain" if train else "ibmGestureTest"
        self._list_files()
        users = [self._USER.match(Path(p).parent.name) for p in self.data]
        self.users, self.lighting = [int(m[1]) for m in users], [m[2] for m in users]

    def _group(self, folder: Path) -> None:
        if self._USER.match(folder.name) is None:
            raise self._refuse(folder, "not a user folder (userNN_<lighting>)")

    def _label(self, file: Path) -> int:
        if file.stem not in self.class_labels():
            raise self._refuse(file, f"not a gesture label file (<label>.npy, label 0 to {len(self.classes) - 1})")
        return int(file.stem)

    def class_labels(self) -> dict[str, int]:
        return {str(i): i for i in range(len(self.classes))}


class CIFAR10DVSFiles(_OfflineMixin, tonic.datasets.CIFAR10DVS):
    """tonic CIFAR10DVS over save_to/CIFAR10DVS/<class>/*.aedat4 (no official split)."""

    tonic_folder = "CIFAR10DVS"
    file_type = ".aedat4"
    layout = "CIFAR10DVS/<airplane|automobile|...|truck>/<id>.aedat4 (the extracted per-class zips)"

    def __init__(self, save_to: str) -> None:
        tonic.dataset.Dataset.__init__(self, save_to)
        self.label_of_folder = dict(self.classes)
        self._list_files()

    def _group(self, folder: Path) -> None:
        if folder.name not in self.label_of_folder:
            raise self._refuse(folder, f"not a class folder ({', '.join(self.label_of_folder)})")
