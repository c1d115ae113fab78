"""Files on disk: atomic writes that keep the user's umask, strict JSON, safe checkpoint loading,
and one run per output folder (a lock file), so an interrupted or doubled run never leaves a half
file or two runs' results mixed in one folder."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch
from filelock import FileLock, Timeout

from .errors import SpeckMttError, WriteError

LOCK_NAME = ".speck-mtt.lock"  # the holder line
FLOCK_NAME = ".speck-mtt.flock"  # the flock
# temporary files and folders of atomic writes: .<target>.<pid>.<token>.tmp
_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[^.]*\.tmp$")


def _umask() -> int:
    """The process umask (read from /proc, which does not change it; os.umask is the fallback)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_name(path: Path) -> Path:
    """A temporary sibling of path that remove_stale_temps recognises once its writer is gone."""
    return path.with_name(f".{path.name}.{os.getpid()}.build.tmp")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files/folders that killed writers (dead pids) left in folder."""
    import shutil

    removed = []
    for entry in Path(folder).glob(".*.tmp"):
        m = _TEMP.match(entry.name)
        if m is None or pid_alive(int(m["pid"])):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], fsync: bool = True) -> None:
    """Write through a temporary file and os.replace: a killed run never leaves a half file.

    The file gets the mode a plain open() would (0666 less the umask; mkstemp makes it 0600).
    With fsync the data and then the folder entry are flushed, so a power cut after the return
    keeps the new file; fsync=False for many small regenerable files, where atomicity alone is
    what matters. An OSError (disk full, file-size limit, no permission) becomes a WriteError
    naming the file and what is still safe; the temporary file is removed on every failure.
    """
    path = Path(path)
    existed = path.exists()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        if fsync:
            fsync_folder(path.parent)
    except Exception as exc:
        cause = _os_error_of(exc)
        if cause is None:
            raise
        raise write_error(path, cause, existed) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind a failed write: exc itself, or the one torch.save's RuntimeError hides
    in its context (torch reports a failed write to a file object as "unexpected pos ...")."""
    seen = 0
    while exc is not None and seen < 5 and not isinstance(exc, SpeckMttError):
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# what to do about an OSError of a write, by errno
_WRITE_FIXES = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file-size limit (ulimit -f)",
    errno.EACCES: "make the folder writable",
    errno.EPERM: "make the folder writable",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EISDIR: "a folder stands there: pass the path of a file",
}


def write_error(path: Path, exc: OSError, existed: bool) -> WriteError:
    """One line for a failed write: the file, the reason, what is still safe and the fix."""
    kept = ("nothing was changed" if path.is_dir() else
            f"the earlier {path.name} is unchanged" if existed else "no partial file was left")
    fix = _WRITE_FIXES.get(exc.errno or 0, "fix the cause")
    return WriteError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__}); {kept}; "
                      f"{fix}, or write to another folder", str(path))


def save_torch(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and os.replace (atomic on POSIX)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def _unreadable_reason(path: Path) -> str | None:
    """Why path cannot be a torch checkpoint, judged from its bytes; None when it may be one."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (an interrupted copy?)"
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return f"a truncated or damaged torch archive ({size} bytes; an interrupted copy?)"
    if not head.startswith(b"PK") and not head.startswith(b"\x80"):
        kind = "a text file" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "unknown binary data"
        return f"not a torch checkpoint: {kind} starting with {head[:16]!r}"
    return None


def load_torch(path: Path) -> Any:
    """torch.load with weights_only=True; a missing, foreign or damaged file is a one-line error
    naming the file, what is wrong with it and the fix."""
    path = Path(path)
    if not path.is_file():
        raise SpeckMttError(f"{path}: no such checkpoint file; pass the path of a .pt written by speck-mtt")
    reason = _unreadable_reason(path)
    fix = "pass a .pt written by speck-mtt (copy it again if it was cut short)"
    if reason is None:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt/foreign files
            if "weights_only" in str(exc):
                reason = ("it holds Python objects beyond tensors and plain data, refused by "
                          "torch.load(weights_only=True)")
                fix = "only load checkpoints written by speck-mtt"
            else:
                reason = f"damaged or not a torch checkpoint ({type(exc).__name__}: {str(exc).strip()})"
    reason = reason.splitlines()[0]
    raise SpeckMttError(f"{path}: cannot be read as a speck-mtt checkpoint: {reason}; {fix}")


def finite_json(obj: Any) -> Any:
    """obj with NaN/inf (e.g. an undefined SD: the reference has no spike) as null: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """JSON that every parser reads: no NaN/Infinity (they become null)."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False)


def save_json(obj: Any, path: Path) -> None:
    """Write JSON atomically (metrics and reports are read while runs are going on)."""
    data = (dumps_json(obj) + "\n").encode()
    atomic_write(path, lambda fh: fh.write(data))


def save_text(text: str, path: Path) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


# ---------------------------------------------------------------------------------------------
# One run per output folder
# ---------------------------------------------------------------------------------------------

def _holder(info: Path) -> dict[str, Any] | None:
    """The holder line (pid, host, since, what) of a lock; None when there is none."""
    try:
        text = info.read_text()
    except FileNotFoundError:
        return None
    pid, host, since, what = (text.strip().split(" ", 3) + ["", "", "", ""])[:4]
    return {"pid": int(pid) if pid.isdigit() else None, "host": host, "since": since, "what": what}


def _acquire(folder: Path) -> FileLock:
    """Take the folder's flock (filelock: the kernel frees it when its holder dies, kill -9 too),
    then write the holder line that a second run's error names."""
    info = folder / LOCK_NAME
    held = FileLock(folder / FLOCK_NAME, timeout=0)
    for _ in range(20):
        try:
            held.acquire()
        except Timeout:
            holder = _holder(info)
            if holder is None:  # the holder is starting or finishing: its line comes or goes in a moment
                time.sleep(0.05)
                continue
            raise SpeckMttError(
                f"{folder} is in use by `{holder['what'] or '?'}` (pid {holder['pid']} on {holder['host']} "
                f"since {holder['since']}); wait for it to finish or pass another --out") from None
        stale = _holder(info)  # a holder line without a flock: its run died before cleaning up
        if stale is not None:
            print(f"warning: {folder}: removing the stale lock of `{stale['what'] or '?'}` "
                  f"(pid {stale['pid']} since {stale['since']} is no longer running)", file=sys.stderr)
        what = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]).replace("\n", " ")
        mine = f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')} {what}\n"
        atomic_write(info, lambda fh: fh.write(mine.encode()), fsync=False)
        return held
    raise SpeckMttError(f"{folder} is in use by another run (it holds {folder / FLOCK_NAME}; its holder line "
                        f"{info} is missing); wait for it to finish or pass another --out")


def _release(folder: Path, held: FileLock) -> None:
    """Remove both files while still holding the flock (filelock skips an unlinked inode), then free it."""
    (folder / LOCK_NAME).unlink(missing_ok=True)
    (folder / FLOCK_NAME).unlink(missing_ok=True)
    held.release()


@contextmanager
def output_lock(folder: str | Path) -> Iterator[Path]:
    """Hold folder for one run (train, deploy, measure) until the block ends.

    A flock (filelock) on .speck-mtt.flock decides; .speck-mtt.lock names the holder (pid, host,
    start, command line). A second run into the same folder is a one-line error naming the holder;
    the holder line of a process that is gone (kill -9, power loss) is reported and replaced;
    temporary files that killed writers left behind are removed. Under torchrun only rank 0 writes, so only it locks.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SpeckMttError(f"{folder} is a file, not a folder; pass a folder as --out")
    if int(os.environ.get("RANK", "0")) != 0:
        yield folder
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    held = _acquire(folder)
    try:
        remove_stale_temps(folder)
        yield folder
    finally:
        _release(folder, held)
        if created and not any(folder.iterdir()):  # a run that failed before writing leaves no folder
            folder.rmdir()
