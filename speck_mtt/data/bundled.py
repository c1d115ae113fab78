"""Real recordings shipped inside the package as a compressed archive, unpacked once into the data dir.

The archive is checked against its sha256 before anything is extracted (a corrupt or replaced
archive is refused with one line), extracted into a temporary folder next to the target and
renamed into place, so the target folder either holds the whole set or does not exist. A second
call finds the marker file and returns at once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..files import remove_stale_temps, temp_name
from .functional.mnist_idx import ASSETS

MARKER = ".speck_mtt_bundled.json"


@dataclass(frozen=True)
class Bundle:
    """One shipped archive: its file under assets/, checksum, folder under the data dir, file count."""

    archive: str
    sha256: str
    folder: str
    n_files: int


BUNDLES = {
    "nmnist-real800": Bundle("nmnist-real800.tar.xz",
                             "f30622111205a95ea01a147d88361178fb3baf21b3e6fdb46c502599e7bad4a2",
                             "nmnist-real800", 800),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _extract(archive: Path, into: Path) -> int:
    """Extract regular files and folders only (tarfile's "data" filter refuses links and escapes)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{archive}: cannot be unpacked ({type(exc).__name__}: {exc}".splitlines()[0]
                        + "); reinstall speck-mtt") from None
    return sum(m.isfile() for m in members)


def unpack(name: str, data_dir: Path, archive: Path | None = None) -> Path:
    """The folder holding the unpacked recordings of bundle `name` (unpacked on first use)."""
    bundle = BUNDLES[name]
    target = Path(data_dir) / bundle.folder
    if (target / MARKER).is_file():
        return target
    archive = archive or ASSETS / bundle.archive
    if not archive.is_file():
        raise DataError(f"{archive}: the packaged {name} archive is missing; reinstall speck-mtt")
    got = sha256_of(archive)
    if got != bundle.sha256:
        raise DataError(f"{archive}: corrupt {name} archive (sha256 {got[:12]}..., expected "
                        f"{bundle.sha256[:12]}...); reinstall speck-mtt")
    if target.exists():  # no marker: not ours or a foreign leftover, never delete it silently
        raise DataError(f"{target} exists but was not unpacked by speck-mtt; remove it or pick another --data-dir")
    tmp = temp_name(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(tmp.parent)  # folders of killed unpackers (the data dir is never locked)
    tmp.mkdir()
    try:
        n = _extract(archive, tmp)
        if n != bundle.n_files:
            raise DataError(f"{archive}: holds {n} files, expected {bundle.n_files}; reinstall speck-mtt")
        (tmp / MARKER).write_text(json.dumps({"archive": bundle.archive, "sha256": bundle.sha256, "files": n}))
        try:
            tmp.rename(target)
        except OSError:  # another process unpacked the same archive first
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
