"""Atomic file writes: all or nothing, with the mode the destination should have.

Every file the package writes (saved models, the Omniglot cache, downloads,
the benchmarks' results) goes through :func:`atomic_writer`, so that a
failure or a killed process never leaves a truncated file under the final
name, an overwritten file keeps its permissions, and errors name the file
the caller asked for rather than a temporary one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_writer"]


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through, all or nothing.

    Writes go to a temporary file in the same folder, which is flushed to
    disk and renamed over ``path`` (``os.replace`` is atomic) only when the
    block ends without error; on any error, ``KeyboardInterrupt`` included,
    the temporary file is removed and ``path`` is left as it was.

    Where the system allows it (Linux, ``O_TMPFILE``), the temporary file has
    no name until it is complete, so even a process killed mid-write
    (``SIGKILL``, a power cut) leaves nothing behind: the kernel frees the
    unnamed file. Elsewhere it is a named ``.<name>.*.part`` file, removed
    on every error the process survives.

    The new file gets the permission bits of the file it replaces (a
    ``0600`` model stays private), or, for a new file, those the process's
    umask gives (``0666 & ~umask``, as ``open`` would). A symbolic link at
    ``path`` is replaced by the new file, not written through; the new file
    takes the permission bits of the link's target. An ``OSError`` of the
    writer itself (creating, flushing, renaming) names ``path``, never the
    temporary file.
    """
    path = Path(path)
    try:
        mode = _mode_for(path)
        fd, tmp = _unnamed_file(path.parent), None
        if fd is None:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=".part", dir=path.parent
            )
    except OSError as error:
        raise _naming(error, path) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            try:
                handle.flush()
                os.fsync(handle.fileno())
                # Before the file has a name in the folder: never readable by
                # more users than the destination allows.
                os.fchmod(handle.fileno(), mode)
                if tmp is None:  # name it only now, complete, to rename it over
                    tmp = _name_unnamed(handle.fileno(), path)
            except OSError as error:
                raise _naming(error, path) from error
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise _naming(error, path) from error
        tmp = None
        _fsync_folder(path.parent)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def _mode_for(path: Path) -> int:
    """The permission bits ``path`` keeps, or the umask's for a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system says
    it (Linux's ``/proc/self/status``); elsewhere set and restored at once."""
    with contextlib.suppress(OSError, ValueError):
        status = Path("/proc/self/status").read_text()
        match = re.search(r"^Umask:\s*([0-7]+)$", status, re.MULTILINE)
        if match is not None:
            return int(match.group(1), 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` (same class and errno) naming the destination ``path``."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, str(path))


def _unnamed_file(folder: Path) -> int | None:
    """A file descriptor of an unnamed file in ``folder`` (``O_TMPFILE``), or
    None where the system or file system has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError:
        # Not supported by this file system (or this kernel); a folder that
        # cannot be written is reported by mkstemp, naming the destination.
        return None


def _name_unnamed(fd: int, path: Path) -> str:
    """Give the unnamed file ``fd`` a temporary name beside ``path``."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # linkat(AT_SYMLINK_FOLLOW) through /proc: os.link uses linkat only
        # with a dir_fd (plain link() does not follow the magic link).
        os.link(f"/proc/self/fd/{fd}", tmp.name, dst_dir_fd=folder)
    finally:
        os.close(folder)
    return str(tmp)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every system can)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
