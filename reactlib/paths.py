"""Where things live, independent of the working directory a kernel was started in.

papermill starts kernels in the notebook's folder (the runner passes ``cwd``), nbval does the
same, a student's Jupyter may start anywhere: every path the suite writes is therefore
anchored at the repository root, found from the installed package or the working directory.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST_RELPATH = Path("notebooks") / "manifest.yaml"

RUNS_DIR_ENV = "REACTLIB_RUNS_DIR"


def _is_root(candidate: Path) -> bool:
    return (candidate / MANIFEST_RELPATH).is_file() and (candidate / "pyproject.toml").is_file()


def repo_root() -> Path:
    """The ReactLab checkout: the folder holding ``pyproject.toml`` and ``notebooks/manifest.yaml``.

    Looked for above the package first (the editable install the Makefile makes), then above
    the working directory (a non-editable install used from inside a checkout).
    """
    starts = (Path(__file__).resolve().parent, Path.cwd().resolve())
    for start in starts:
        for candidate in (start, *start.parents):
            if _is_root(candidate):
                return candidate
    raise FileNotFoundError(
        "cannot find the ReactLab checkout: no folder above "
        f"{starts[0]} or {starts[1]} holds both pyproject.toml and {MANIFEST_RELPATH}. "
        "Run from inside the repository, or install it with `pip install -e .`."
    )


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def manifest_path() -> Path:
    return repo_root() / MANIFEST_RELPATH


def env_dir(env: str, default: str | Path) -> Path:
    """The folder named by the environment variable ``env``, else ``default`` under the checkout.

    A relative value is taken relative to the checkout, not to the working directory, because
    the runner and its kernels (started in the notebooks' folder) work in different folders.
    """
    base = os.environ.get(env)
    return repo_root() / (Path(base).expanduser() if base else Path(default))


def runs_dir(profile: str) -> Path:
    """``runs/<profile>/`` under the checkout, or under ``$REACTLIB_RUNS_DIR`` when it is set
    (see :func:`env_dir`)."""
    return env_dir(RUNS_DIR_ENV, "runs") / profile


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    A reader never sees half a file, and a failed write leaves nothing behind (the old file, if
    any, stays as it was). The temporary name keeps the suffix, so writers that choose a format
    by extension (``np.save``, ffmpeg) behave as for the final name.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextmanager
def file_lock(path: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (a file or folder, which need not exist) while the
    block runs; other processes asking for the same lock wait.

    The lock is ``fcntl.flock`` on the file ``.<name>.lock`` beside ``path``, so writers that
    build ``path`` in one go (a corpus, a trained model) take turns and the second finds the
    first one's result. The lock file is removed on release; a waiter that finds its file
    removed or replaced locks the new one instead, so two processes never both hold the lock.
    Yields the lock file's path.
    """
    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(lock).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed this file on release: lock the new one
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
