"""Every writer is all or nothing, keeps file modes, and downloads are checked.

Each writer of the package (``persistence.dump``, ``save_classifier``,
``save_encoder``, the Omniglot cache, downloads, the benchmarks' results)
goes through ``_io.atomic_writer``. These tests inject a failure mid-write in
each one, and kill a process mid-write (``SIGKILL``: no cleanup code runs),
then check that the previous file is intact and no temporary file is left;
that an overwritten file keeps its permission bits and a new one gets the
umask's; and that errors name the destination, not the temporary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sklearn_protonet import PrototypicalClassifier, _io, persistence
from sklearn_protonet.datasets import _base, _omniglot, load_omniglot
from sklearn_protonet.modules import MLP

from .conftest import OMNIGLOT_FILES, omniglot_data_home

ROOT = Path(__file__).resolve().parents[1]
X = np.random.RandomState(0).rand(12, 5).astype(np.float32)
Y = np.repeat([0, 1, 2], 4)


def _clf(encoder=None):
    return PrototypicalClassifier(encoder).fit(X, Y)


def _write_results(path):
    from _common import write_results  # benchmarks/_common.py (conftest's path)

    write_results(path.stem, {"a": 1}, "| a |", folder=path.parent)


# name -> (writes the file at the given path)
WRITERS = {
    "dump": lambda path: persistence.dump(_clf(), path),
    "save_classifier": lambda path: persistence.save_classifier(
        _clf(MLP(in_features=5, hidden_sizes=(4,), out_features=3)), path
    ),
    "save_encoder": lambda path: persistence.save_encoder(
        MLP(in_features=5, hidden_sizes=(4,), out_features=3), path
    ),
    "omniglot_cache": lambda path: _omniglot._atomic_write_npz(
        path, {"images": np.zeros((50, 28, 28), np.uint8)}
    ),
    "results": lambda path: _write_results(path),
    "download": lambda path: _download(path),
}


def _download(path):
    content = b"PK\x03\x04 a zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "_open_url", lambda url: io.BytesIO(content))
        _base.download("http://x/f.zip", path, hashlib.sha256(content).hexdigest())


def _target(folder: Path, name: str) -> Path:
    return folder / ("out.json" if name == "results" else "out.bin")


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("failure", ["write", "fsync", "rename"])
def test_failure_mid_write_keeps_the_old_file(name, failure, tmp_path, monkeypatch):
    target = _target(tmp_path, name)
    target.write_bytes(b"the previous model")
    if failure == "write":
        real = _io.os.fdopen

        class Failing(io.BufferedWriter):
            def write(self, data):
                super().write(data[: len(data) // 2])
                raise OSError("disk full")

        monkeypatch.setattr(
            _io.os, "fdopen", lambda fd, mode: Failing(real(fd, "wb", buffering=0))
        )
    else:

        def fail(*args, **kwargs):
            raise OSError(f"{failure} failed")

        name_ = "replace" if failure == "rename" else "fsync"
        monkeypatch.setattr(_io.os, name_, fail)
    with pytest.raises(OSError, match="disk full|failed"):
        WRITERS[name](target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert target.read_bytes() == b"the previous model"


_KILLED_WRITER = """
import io, os, sys, time
from pathlib import Path
sys.path.insert(0, {benchmarks!r})
from sklearn_protonet import _io
from tests.test_atomic_writes import WRITERS

def stall():
    print("stalled", flush=True)
    time.sleep(60)

if {at!r} == "fsync":  # every byte is written: now wait to be killed
    _io.os.fsync = lambda fd: stall()
else:  # half of the first write is on disk
    real = _io.os.fdopen

    class Half(io.BufferedWriter):
        def write(self, data):
            super().write(data[: max(1, len(data) // 2)])
            self.flush()
            stall()

    _io.os.fdopen = lambda fd, mode: Half(real(fd, "wb", buffering=0))
WRITERS[{name!r}](Path({target!r}))
"""


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("at", ["write", "fsync"])
def test_killed_mid_write_leaves_nothing(name, at, tmp_path):
    """SIGKILL runs no cleanup: the temporary file must have no name to leave."""
    target = _target(tmp_path, name)
    target.write_bytes(b"the previous model")
    code = _KILLED_WRITER.format(
        benchmarks=str(ROOT / "benchmarks"), name=name, target=str(target), at=at
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line == "stalled\n", proc.stderr.read()
        # The bytes are in a file inside tmp_path already (not in memory).
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert target.read_bytes() == b"the previous model"


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("name", list(WRITERS))
def test_an_overwritten_file_keeps_its_mode(name, tmp_path):
    """A private model stays private when it is saved again."""
    target = _target(tmp_path, name)
    target.write_bytes(b"the previous model")
    for mode in (0o600, 0o640):
        target.chmod(mode)
        with _umask(0o022):
            WRITERS[name](target)
        assert target.read_bytes() != b"the previous model"
        assert _mode(target) == mode, oct(_mode(target))


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_new_file_gets_the_umask_mode(name, tmp_path):
    for mask in (0o077, 0o022, 0o002):
        target = _target(tmp_path / oct(mask), name)
        target.parent.mkdir()
        with _umask(mask):
            WRITERS[name](target)
        assert _mode(target) == 0o666 & ~mask, (oct(mask), oct(_mode(target)))


def test_a_symlink_is_replaced_not_written_through(tmp_path):
    """Documented: the link becomes the new file; its old target is left."""
    target = tmp_path / "target.bin"
    target.write_bytes(b"the previous model")
    target.chmod(0o600)
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    with _io.atomic_writer(link) as handle:
        handle.write(b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"the previous model"
    assert _mode(link) == 0o600  # the mode of what the link pointed to


def test_errors_name_the_destination_not_the_temporary_file(tmp_path):
    # The destination is a folder: the rename fails.
    folder = tmp_path / "model.bin"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as info:
        persistence.save_encoder(MLP(in_features=5, out_features=3), folder)
    assert info.value.filename == str(folder), info.value
    assert ".part" not in str(info.value)
    # The destination's folder is missing: the temporary file cannot be made.
    missing = tmp_path / "no-such-folder" / "model.bin"
    with pytest.raises(FileNotFoundError) as info:
        persistence.dump(_clf(), missing)
    assert info.value.filename == str(missing), info.value
    assert ".part" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


# -- downloads -----------------------------------------------------------------


def test_known_checksums_match_the_canonical_files():
    home = omniglot_data_home()  # fails in CI, skips elsewhere, when missing
    for f in (home / rel for rel in OMNIGLOT_FILES):
        assert hashlib.sha256(f.read_bytes()).hexdigest() == _omniglot._SHA256[f.name]


def test_a_wrong_download_is_deleted_with_a_message(tmp_path, monkeypatch):
    page = b"<!DOCTYPE html><html>Rate limit exceeded</html>"
    monkeypatch.setattr(_base, "_open_url", lambda url: io.BytesIO(page))
    home = tmp_path / "home"
    with pytest.raises(FileNotFoundError) as info:
        load_omniglot("train", data_home=home)
    message = str(info.value)
    assert "is not the expected one: its SHA-256 is" in message
    assert hashlib.sha256(page).hexdigest() in message
    assert "<!DOCTYPE html>" in message and "It was deleted" in message
    # Nothing kept, not even the folders the download created.
    assert not home.exists() or list(home.rglob("*")) == []
    # The next call downloads again (it does not trip on a bad file).
    with pytest.raises(FileNotFoundError, match="SHA-256"):
        load_omniglot("train", data_home=home)


def test_failed_download_removes_only_the_folders_it_created(tmp_path, monkeypatch):
    def offline(url):
        raise ConnectionResetError("connection lost")

    monkeypatch.setattr(_base, "_open_url", offline)
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConnectionResetError):
        _base.download("http://x/f.zip", tmp_path / "mine" / "a" / "b" / "f.zip")
    assert [p.name for p in tmp_path.rglob("*")] == ["mine"]


def test_a_good_download_is_kept(tmp_path, monkeypatch):
    content = b"PK\x03\x04 a zip"
    monkeypatch.setattr(_base, "_open_url", lambda url: io.BytesIO(content))
    dest = tmp_path / "d" / "f.zip"
    _base.download("http://x/f.zip", dest, hashlib.sha256(content).hexdigest())
    assert dest.read_bytes() == content
    assert [p.name for p in dest.parent.iterdir()] == ["f.zip"]
