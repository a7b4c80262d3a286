"""Files that symgrad writes (kernel modules, pictures, benchmark JSON): all or nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def why_unwritable(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be written, or None. Missing folders are no reason: they are made,
    as `mkdir -p` would (`k.save("build/k.py")` in a fresh directory); a file standing
    where a folder should be is."""
    path = Path(path)
    if path.is_dir():
        return "it is a directory"
    directory = path.parent if str(path.parent) else Path(".")
    blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return f"{str(blocker)!r} is not a directory; write somewhere else or move that file"
    return None


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write text (or bytes) to path through a temporary file and a rename: all or nothing
    (missing parent folders are created first).

    On any failure the temporary file is removed and an existing file at `path`
    is left as it was.
    """
    from symgrad.errors import OutputPathError

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if (why := why_unwritable(path)) is not None:
        raise OutputPathError(f"cannot write {str(path)!r}: {why}")
    if not directory.is_dir():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"cannot write {str(path)!r}: {_reason(exc)}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputPathError(f"cannot write {str(path)!r}: {_reason(exc)}") from None
    try:
        binary = isinstance(text, bytes)
        with open(fd, "wb" if binary else "w", encoding=None if binary else "utf-8",
                  closefd=True) as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputPathError(f"cannot write {str(path)!r}: {_reason(exc)}") from None
        raise
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
