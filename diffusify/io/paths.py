"""What a file name may be, and which file it really is.

* Inputs are regular files: a named pipe (FIFO), a device or a socket would block the reader forever or read
  something that is not a file, so they are refused before anything opens them.
* A file name with a line break cannot be passed to ffmpeg's list of inputs safely (it would start a directive of
  its own): such names are refused, with the file named.
* Two names are the same file when they resolve to the same real path, or, for files that exist, when they have
  the same device and inode (a hard link, a path through a symbolic link). An output that is an input under any
  other name would destroy the source.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from diffusify.io.errors import MediaError

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it exists and is not a regular file (``"a named pipe (FIFO)"``...), else None.

    Never opens the file (a FIFO would block)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def require_regular(path: str | os.PathLike[str], what: str = "an input") -> None:
    """Raise MediaError unless ``path`` is a regular file (or does not exist: the caller reports that)."""
    kind = special_kind(path)
    if kind is not None:
        raise MediaError(f"{os.fspath(path)}: is {kind}, not a regular file; {what} must be a file")


def unsafe_name(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be handed to ffmpeg as a name (a line break or another control character), or None."""
    text = os.fspath(path)
    if "\n" in text or "\r" in text:
        return "holds a line break"
    if any(ord(ch) < 32 and ch != "\t" for ch in text):
        return "holds a control character"
    return None


def identity(path: str | os.PathLike[str]) -> tuple[object, ...]:
    """A key equal for two names of the same file: (device, inode) when it exists, else its real path (the
    folders resolved through every symbolic link, so ``lnk/../x.mp4`` compares as the file it names)."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """``path`` is ``folder`` or lies in it (after resolving symbolic links)."""
    p, f = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return p == f or f in p.parents


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file whole or not at all, also across a crash or a power cut: a temporary file beside it,
    fsync, a rename over the old one, and an fsync of the folder so the rename itself is on disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
