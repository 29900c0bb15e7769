"""Finding and opening the file a file-based source reads.

Both failures raise ``SourceUnavailable`` naming the ``path`` setting, because
nothing of the source can be read; ``kind`` names the file in the message, such as
"CSV file".
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from runtime.sources.base import SourceUnavailable


def resolve_path(path: str, base_dir: Path, system_id: str, kind: str = "file") -> Path:
    """Return the file ``path`` names, relative to ``base_dir`` unless absolute."""
    file_path = Path(path)
    if not file_path.is_absolute():
        file_path = base_dir / file_path
    if not file_path.is_file():
        state = "is not a file" if file_path.exists() else "not found"
        raise SourceUnavailable(
            f"{kind} {path!r} of system {system_id!r} {state} (looked at "
            f"{str(file_path)!r}); check the `path` setting"
        )
    return file_path


def open_binary(file_path: Path, path: str, system_id: str,
                kind: str = "file") -> IO[bytes]:
    """Open the file for reading bytes; ``path`` is the setting as written."""
    try:
        return open(file_path, "rb")
    except OSError as exc:
        raise SourceUnavailable(
            f"{kind} {path!r} of system {system_id!r} cannot be opened: "
            f"{exc.strerror}; check the `path` setting and the file's permissions"
        ) from exc
