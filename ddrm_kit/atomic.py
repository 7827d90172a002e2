"""Atomic file writes: a kill or a failed write never leaves half a file where a file was asked for.

Every file the project writes (images, run folders, checkpoints, bench outputs, exported priors)
goes through here, so all get the same rule: write a hidden temporary file in the destination's
folder, give it the permissions of a normally created file (``0o666`` less the umask), then
``os.replace`` it into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_bytes", "write_text", "move_tree"]


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_path)`` to fill a temporary file, then move it to ``path``; returns ``path``.

    Missing parent folders are created. On any error the temporary file is removed and the
    previous content of ``path`` (if any) is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, _default_mode())  # mkstemp makes the file private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def move_tree(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move every file under the folder ``src`` to the same relative path under ``dest``, file by file
    atomically (other files in ``dest`` are kept), then remove ``src``.

    ``src`` must be on the same file system as ``dest`` (make it with ``tempfile.mkdtemp(dir=dest)``).
    """
    src, dest = Path(src), Path(dest)
    mode = _default_mode()
    try:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                os.chmod(f, mode)
                target = dest / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, target)
    finally:
        shutil.rmtree(src, ignore_errors=True)
