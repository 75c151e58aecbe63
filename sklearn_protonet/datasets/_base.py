"""Where sklearn-protonet keeps data sets and derived caches on disk."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["get_data_home", "get_cache_home"]

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
