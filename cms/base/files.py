"""Writing a file so that no reader ever sees half of it, and the modes cms keeps.

Standard library only: the Claude transport caches its probe with it, the store
writes every record with it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

#: ``$CMS_HOME`` and every folder below it.
DIR_MODE = 0o700
#: Every file cms writes there, lock files too.
FILE_MODE = 0o600


def encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (a lone surrogate such as ``\\ud800``,
    which a child can put in any tool input or answer) spelled out as ``\\ud800``:
    every string a record or a log gets from a child passes here, so no such text can
    make a write fail. Text that encodes is returned as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def atomic_write(path: Path, text: str, durable: bool = True) -> None:
    """Write ``text`` to ``path``: temp file in the same folder, fsync, rename.

    What UTF-8 cannot encode is written as a backslash escape (:func:`encodable`)
    rather than failing the write. ``durable=False`` skips the fsync, for caches:
    still never half a file to a reader, but a crash may lose the write."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
