"""File I/O with user-facing errors: atomic writes (a reader never sees a half-written file), one writer
per output (:func:`exclusive_writer`), output paths checked before the work (and a new output folder removed
again when the work fails before saving anything: :func:`removed_on_error`), and JSON files read into
:class:`pnag.errors.DataError` when they are not JSON."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Sequence

from .errors import DataError, PnagError

WRITABLE = "a file path in a writable folder"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def cannot_write(path: str | os.PathLike, exc: BaseException | str, what: str = "output",
                 folder: bool = False) -> PnagError:
    """The error for an output that could not be written (``exc``: the OSError that said why)."""
    allowed = "a folder path (existing or new) in a writable folder" if folder else WRITABLE
    return PnagError(f"{what}: cannot write {str(path)!r} ({_reason(exc)}); allowed: {allowed}")


def check_output_path(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    """``path`` as a Path when an output can be written there, checked before the work starts: not a
    folder where a file is meant (nor a file where a folder is meant), and its nearest existing folder
    takes a new file (tried with a temporary file, removed again: this also catches read-only file
    systems and /proc, which permission bits do not show). Else a :class:`PnagError` naming ``what``."""
    p = Path(path)
    try:
        if folder and p.exists() and not p.is_dir():
            raise PnagError(f"{what}: {str(path)!r} is a file; allowed: a folder path (existing or new)")
        if not folder and p.is_dir():
            raise PnagError(f"{what}: {str(path)!r} is a folder; allowed: {WRITABLE}")
        base = p if folder and p.is_dir() else next((q for q in p.absolute().parents if q.exists()), None)
        if base is None or not base.is_dir():
            raise cannot_write(path, f"{base} is not a folder", what, folder)
        fd, tmp = tempfile.mkstemp(prefix=".pnag-write-check.", dir=base)
        os.close(fd)
        os.unlink(tmp)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        if isinstance(exc, PnagError):
            raise
        raise cannot_write(path, exc, what, folder) from None
    return p


@contextlib.contextmanager
def removed_on_error(folder: str | Path):
    """Remove ``folder`` again when the command fails with a :class:`PnagError` before saving any work
    in it: it did not exist before, and holds no file but a run's ``config.json``."""
    folder = Path(folder)
    existed = folder.exists()
    try:
        yield
    except PnagError:
        if not existed and folder.is_dir() and all(p.is_dir() or p.name == "config.json" for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def read_json_file(path: str | os.PathLike, what: str, expected: str) -> Any:
    """The JSON value in the UTF-8 file ``path``; a folder, an unreadable, non-UTF-8 or non-JSON file
    (also JSON nested or with integers beyond Python's limits) is a :class:`DataError` naming ``what``
    and ``expected`` (what the file should hold)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what}: not UTF-8 text (byte {exc.start}); allowed: {expected}") from None
    except OSError as exc:
        raise DataError(f"{what}: cannot be read ({_reason(exc)}); allowed: {expected}") from None
    return parse_json(text, what, expected)


def parse_json(text: str | bytes, what: str, expected: str) -> Any:
    """``json.loads(text)``, with a :class:`DataError` naming ``what`` and ``expected`` when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno}); allowed: {expected}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{what}: not UTF-8 text (byte {exc.start}); allowed: {expected}") from None
    except (ValueError, RecursionError):  # int_max_str_digits, or nesting deeper than the recursion limit
        raise DataError(f"{what}: JSON beyond what pnag reads (nested too deeply or a number too long); "
                        f"allowed: {expected}") from None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. A folder that cannot
    be created or written, or a ``path`` that is a folder, is a :class:`PnagError` (:func:`cannot_write`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    # mkstemp creates 0600; give the final file the mode a plain open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:  # e.g. path is a folder
            raise cannot_write(path, exc) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | os.PathLike, name: str = "*") -> None:
    """Remove from ``folder`` the temporary files (``.NAME.*.tmp``, of the file ``name`` or of any) that
    :func:`atomic_open` leaves when its process is killed mid-write. Only while holding the folder's
    :func:`exclusive_writer`: no write is under way."""
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_csv_atomic(path: str | os.PathLike, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> None:
    """``header`` then ``rows`` as CSV (one ``\\n`` per line), written atomically (:func:`atomic_open`)."""
    import csv

    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


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


def save_figure_atomic(fig, path: str | os.PathLike, fmt: str = "png", **savefig: Any) -> Path:
    """Render a matplotlib figure to ``path`` atomically (a reader never sees half an image), and close it
    if pyplot holds it; ``savefig`` are ``Figure.savefig``'s options (``dpi``, ``bbox_inches``). The
    backend is left as it is: a plain ``matplotlib.figure.Figure`` renders without one."""
    import io
    import sys

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **savefig)
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:  # only a figure made by pyplot is held by it
        plt.close(fig)
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return Path(path)
