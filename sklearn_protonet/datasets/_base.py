"""Data sets on disk: data and cache homes, downloads, checksums, descriptions.

The helpers every loader needs, as scikit-learn keeps them in its own
``datasets/_base.py``: a loader states *what* it needs (files, URLs,
descriptions) and leaves the file handling to this module; files are
written through ``sklearn_protonet._io.atomic_writer``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.request
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np
from sklearn.utils import Bunch

# Re-exported: scripts of the repository write their files through it too.
from .._io import atomic_writer

__all__ = [
    "ChecksumError",
    "atomic_writer",
    "image_bunch",
    "download",
    "get_cache_home",
    "get_data_home",
    "has_write_bits",
    "load_descr",
    "sha256",
]

DATA_HOME_ENV = "SKLEARN_PROTONET_DATA"
CACHE_HOME_ENV = "SKLEARN_PROTONET_CACHE"


def _resolve_data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """Return the data home path without touching the file system."""
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or (
            Path("~") / "sklearn_protonet_data"
        )
    return Path(data_home).expanduser()


def _resolve_cache_home() -> Path:
    """Return the cache home path without touching the file system."""
    env = os.environ.get(CACHE_HOME_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path("~") / ".cache"
    return (base / "sklearn_protonet").expanduser()


def get_data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder where sklearn-protonet looks for data sets.

    The folder is, in order of precedence:

    1. the ``data_home`` argument, when given;
    2. the environment variable ``SKLEARN_PROTONET_DATA``, when set and
       not empty;
    3. ``~/sklearn_protonet_data``.

    A leading ``~`` is expanded to the user's home folder. The folder is
    created when it does not exist and can be created; when it cannot
    (a read-only location, say) it is returned as is and no error is raised,
    so that a read-only data home prepared in advance works.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The data home to use instead of the environment variable or the
        default.

    Returns
    -------
    data_home : pathlib.Path
        The data home folder.

    Examples
    --------
    >>> from sklearn_protonet.datasets import get_data_home
    >>> get_data_home("~/my_data")  # doctest: +SKIP
    PosixPath('/home/me/my_data')
    """
    path = _resolve_data_home(data_home)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        # Read-only data homes (shared folders, CI copies) are legitimate:
        # loaders report missing files themselves, with the full path.
        pass
    return path


def get_cache_home() -> Path:
    """Return the folder for derived caches, creating it when needed.

    The folder is, in order of precedence:

    1. the environment variable ``SKLEARN_PROTONET_CACHE``, when set and
       not empty;
    2. ``$XDG_CACHE_HOME/sklearn_protonet``, when ``XDG_CACHE_HOME`` is set
       and not empty;
    3. ``~/.cache/sklearn_protonet``.

    Loaders write caches here when the data home itself is not writable
    (no write bits, or a write fails).

    Returns
    -------
    cache_home : pathlib.Path
        The cache folder. It exists when this function returns.

    Raises
    ------
    OSError
        If the folder does not exist and cannot be created.
    """
    path = _resolve_cache_home()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open_url(url: str) -> IO[bytes]:
    """Open ``url`` for reading; a separate function so tests can replace it."""
    return urllib.request.urlopen(url, timeout=60)


class ChecksumError(OSError):
    """A download's content is not the expected file (its SHA-256 differs)."""


def download(url: str, dest: Path, checksum: str | None = None) -> None:
    """Download ``url`` to ``dest`` atomically, checking its SHA-256.

    An interrupted download never leaves a truncated file under the final
    name, and a download whose SHA-256 is not ``checksum`` (an error page
    served with status 200, a truncated or altered file) is deleted and
    raises :class:`ChecksumError`. Folders this call created are removed
    again when it fails, so a failed download leaves nothing behind.
    """
    dest = Path(dest)
    created = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        digest, size, head = hashlib.sha256(), 0, b""
        with atomic_writer(dest) as out, _open_url(url) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
                head, size = head or block[:60], size + len(block)
            if checksum is not None and digest.hexdigest() != checksum:
                raise ChecksumError(
                    f"the file downloaded from {url} is not the expected one: "
                    f"its SHA-256 is {digest.hexdigest()}, not {checksum} "
                    f"({size} bytes, starting with {head[:40]!r}; an error page "
                    "or a truncated transfer?). It was deleted, nothing was "
                    f"kept at {dest}; try again later, or download the file "
                    "by hand and put it there."
                )
    except BaseException:
        for folder in created:  # deepest first; only the empty ones go
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def sha256(paths: Sequence[Path]) -> str:
    """The SHA-256 of the files' contents, one after the other, in hex."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def has_write_bits(folder: Path) -> bool:
    """Whether the folder is meant to be written: some write bit is set.

    Root can write into folders whose write bits are all cleared (a shared
    data home laid out read-only); honour the bits rather than the privilege.
    """
    try:
        return bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def load_descr(name: str) -> str:
    """The description ``descr/<name>.rst`` shipped with the package."""
    return (resources.files(__package__) / "descr" / f"{name}.rst").read_text(
        encoding="utf-8"
    )


def image_bunch(
    images: np.ndarray,
    target: np.ndarray,
    descr: str,
    return_X_y: bool,
    target_names: np.ndarray | None = None,
    **extra,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """What an image loader returns: scikit-learn's Bunch (``data``, a flat
    view of ``images``; ``images``; ``target``; ``target_names``, by default
    the sorted labels; ``DESCR``; any ``extra`` fields), or ``(data,
    target)`` when ``return_X_y``."""
    data = images.reshape(len(images), -1)
    if return_X_y:
        return data, target
    names = np.unique(target) if target_names is None else target_names
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=names,
        DESCR=descr,
        **extra,
    )
