"""Atomic file writes (a reader never sees a half-written file) and one writer per output
(:func:`exclusive_writer`)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600; give the final file the mode a plain open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent)
        fh.write("\n")


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output (file or directory): ``.NAME.lock`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def exclusive_writer(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold the exclusive right to write ``path`` (a file or a run directory) while the block runs.

    Takes an OS lock (``filelock``: released by the OS if the process dies, so no stale lock) on
    ``.NAME.lock`` beside ``path`` and writes the holder (PID, host, start time) into it. A second
    writer gets, at once, a :class:`pnag.errors.PnagError` naming ``what`` (the option, e.g.
    ``--out``), ``path``, the holder and the lock file. Yields the lock file's path. The lock file
    stays after release (removing it could let two writers lock two different files).
    """
    import filelock

    from .errors import PnagError

    lock_file = lock_path(path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            holder = lock_file.read_text(encoding="utf-8").strip() or "another process"
        except OSError:
            holder = "another process"
        raise PnagError(f"{what} {path}: already being written by {holder} (lock {lock_file}); allowed: wait for it "
                        f"to finish, or another {what}") from None
    try:
        with open(lock_file, "w", encoding="utf-8") as fh:
            fh.write(f"pnag pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield lock_file
    finally:
        lock.release()
