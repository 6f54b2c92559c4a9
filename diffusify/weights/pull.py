"""Download model weights over HTTP(S) with resume and checksum verification (standard library only).

A download goes to ``<file>.part`` beside its destination. An interrupted download leaves the ``.part``
behind, and the next :func:`pull` resumes it with an HTTP ``Range`` request (or starts over when the server
ignores ranges). When the transfer is complete the file's SHA-256 is checked against the manifest:

* match: the ``.part`` is renamed atomically to its final name;
* mismatch: the bytes are moved to ``<file>.bad`` (kept for inspection, replacing an older one) so that
  the next pull starts from scratch instead of resuming a corrupt file, and :class:`WeightsError` says
  which digest was expected and which one arrived. Nothing already verified is ever deleted.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from diffusify.weights.errors import WeightsError
from diffusify.weights.manifest import ModelEntry

__all__ = ["ProgressCallback", "file_sha256", "pull", "verify"]

ProgressCallback = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_done, bytes_total)`` while downloading; total is None when unknown."""

USER_AGENT = "diffusify-weights/1"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def file_sha256(path: str | Path) -> str:
    """Lower-case hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(entry: ModelEntry, path: str | Path) -> str:
    """Check a file against its manifest entry.

    Args:
        entry: the model's manifest entry.
        path: the file to check.

    Returns:
        The file's SHA-256 (hex).

    Raises:
        WeightsError: the file is missing, or its size or SHA-256 differs from the entry (the message gives
            the expected and the actual digest). An entry without a pinned sha256 only checks the size.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{entry.name}: {path} does not exist; run the pull for this model")
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise WeightsError(f"{entry.name}: {path} has {size} bytes, expected {entry.size}")
    digest = file_sha256(path)
    if entry.sha256 is not None and digest != entry.sha256:
        raise WeightsError(f"{entry.name}: sha256 mismatch for {path}: expected {entry.sha256}, got {digest}")
    return digest


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked by the manifest


def _finish(entry: ModelEntry, part: Path, final: Path, allow_unverified: bool) -> Path:
    """Verify a complete ``.part`` and move it into place."""
    digest = file_sha256(part)
    if entry.sha256 is None:
        if not allow_unverified:  # pragma: no cover - refused before downloading
            raise WeightsError(f"{entry.name}: no sha256 pinned")
    elif digest != entry.sha256:
        bad = final.with_name(final.name + ".bad")
        os.replace(part, bad)
        raise WeightsError(
            f"{entry.name}: sha256 mismatch for the download from {entry.url}: expected {entry.sha256}, "
            f"got {digest}; kept the bytes as {bad}, the next pull starts over"
        )
    if entry.size is not None and part.stat().st_size != entry.size:
        bad = final.with_name(final.name + ".bad")
        os.replace(part, bad)
        raise WeightsError(
            f"{entry.name}: download has {bad.stat().st_size} bytes, expected {entry.size}; kept it as {bad}"
        )
    with part.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(part, final)
    return final


def pull(
    entry: ModelEntry,
    dest_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
    chunk_size: int = 1 << 16,
    allow_unverified: bool = False,
) -> Path:
    """Download a model's file into ``dest_dir`` (resuming a partial download) and verify it.

    An existing final file is verified and returned without downloading.

    Args:
        entry: the manifest entry; it must have a ``url``.
        dest_dir: destination folder (created when missing).
        progress: called with ``(bytes_done, bytes_total_or_None)`` after each chunk, and once before the
            first chunk (with the resumed size).
        timeout: socket timeout in seconds for connecting and for each read.
        chunk_size: bytes per read.
        allow_unverified: download an entry whose sha256 is not pinned (null in the manifest) without a
            digest check; refused otherwise.

    Returns:
        The path of the verified file.

    Raises:
        WeightsError: no URL, no pinned sha256 (unless allowed), an HTTP or network error (the ``.part``
            is kept for resuming), a truncated transfer, or a checksum mismatch.
    """
    if entry.url is None:
        raise WeightsError(f"{entry.name}: has no download url (bundled models ship with the source tree)")
    if entry.sha256 is None and not allow_unverified:
        raise WeightsError(
            f"{entry.name}: no sha256 is pinned in the manifest; pin it, or pull with allow_unverified=True"
        )
    dest_dir = Path(dest_dir)
    final = dest_dir / entry.file
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        verify(entry, final)
        return final
    part = final.with_name(final.name + ".part")

    restarted = False
    while True:
        start = part.stat().st_size if part.exists() else 0
        try:
            response = _open(entry.url, start, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:
                # The .part may already hold the whole file; otherwise it is junk: start over once.
                try:
                    return _finish(entry, part, final, allow_unverified)
                except WeightsError:
                    if restarted:
                        raise
                    bad = final.with_name(final.name + ".bad")
                    if part.exists():
                        os.replace(part, bad)
                    restarted = True
                    continue
            raise WeightsError(f"{entry.name}: HTTP {exc.code} {exc.reason} from {entry.url}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WeightsError(f"{entry.name}: cannot download {entry.url}: {reason}") from None
        break

    with response:
        status = getattr(response, "status", 200)
        total: int | None = None
        length = response.headers.get("Content-Length")
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != start:
                raise WeightsError(
                    f"{entry.name}: server answered the resume at byte {start} with "
                    f"Content-Range {response.headers.get('Content-Range')!r}; delete {part} and pull again"
                )
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        else:
            start = 0  # the server ignored the Range request: the body is the whole file
            total = int(length) if length is not None and length.isdigit() else None
            mode = "wb"
        if total is None and entry.size is not None:
            total = entry.size
        done = start
        if progress is not None:
            progress(done, total)
        try:
            with part.open(mode) as out:
                while True:
                    chunk = response.read(chunk_size)
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, truncated bodies
            raise WeightsError(
                f"{entry.name}: download interrupted after {done} bytes ({exc}); pull again to resume"
            ) from None
    if total is not None and done != total:
        raise WeightsError(
            f"{entry.name}: download stopped at {done} of {total} bytes; pull again to resume from {part}"
        )
    return _finish(entry, part, final, allow_unverified)
