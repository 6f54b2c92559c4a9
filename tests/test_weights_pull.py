"""pull() and verify() against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from diffusify.weights.errors import WeightsError
from diffusify.weights.manifest import ModelEntry
from diffusify.weights.pull import pull, verify

PAYLOAD = bytes(range(256)) * 1200  # 307,200 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /model.bin, honouring Range requests; records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.honour_range = True
        self.cut_after: int | None = None  # send only this many body bytes, then drop the connection
        self.status_override: int | None = None
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                owner.requests.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
                if owner.status_override is not None:
                    self.send_error(owner.status_override)
                    return
                if self.path != "/model.bin":
                    self.send_error(404)
                    return
                start = 0
                match = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
                if match and owner.honour_range:
                    start = int(match.group(1))
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if owner.cut_after is not None:
                    self.wfile.write(body[: owner.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/model.bin"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def ranges(self) -> list[str]:
        return [r["range"] for r in self.requests if "range" in r]


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as srv:
        yield srv


def entry(url: str, sha256: str | None = SHA, **extra: object) -> ModelEntry:
    fields = {
        "name": "tiny",
        "file": "tiny.bin",
        "url": url,
        "sha256": sha256,
        "architecture": "Compact",
        "scale": 2,
        "purpose": "upscale",
        "licence": "CC0-1.0",
        "source": "test",
    }
    fields.update(extra)
    return ModelEntry(**fields)


def test_pull_downloads_verifies_and_reports_progress(server: Server, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    path = pull(
        entry(server.url), tmp_path / "cache", progress=lambda done, total: seen.append((done, total))
    )
    assert path == tmp_path / "cache" / "tiny.bin"
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name("tiny.bin.part").exists()
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    assert server.ranges() == []
    assert verify(entry(server.url), path) == SHA

    # a second pull finds the verified file and does not download again
    count = len(server.requests)
    assert pull(entry(server.url), tmp_path / "cache") == path
    assert len(server.requests) == count


def test_pull_resumes_a_partial_file_with_a_range_request(server: Server, tmp_path: Path) -> None:
    part = tmp_path / "tiny.bin.part"
    part.write_bytes(PAYLOAD[:100_000])
    seen: list[tuple[int, int | None]] = []
    path = pull(entry(server.url), tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert server.ranges() == ["bytes=100000-"]
    assert path.read_bytes() == PAYLOAD
    assert seen[0] == (100_000, len(PAYLOAD))
    assert not part.exists()


def test_interrupted_download_keeps_the_part_and_resumes(server: Server, tmp_path: Path) -> None:
    server.cut_after = 50_000
    with pytest.raises(WeightsError, match="pull again to resume"):
        pull(entry(server.url), tmp_path, timeout=5)
    part = tmp_path / "tiny.bin.part"
    assert part.stat().st_size == 50_000

    server.cut_after = None
    path = pull(entry(server.url), tmp_path)
    assert server.ranges() == ["bytes=50000-"]
    assert path.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.honour_range = False
    (tmp_path / "tiny.bin.part").write_bytes(b"x" * 1000)  # junk that must not end up in the file
    path = pull(entry(server.url), tmp_path)
    assert server.ranges() == ["bytes=1000-"]
    assert path.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_after_416(server: Server, tmp_path: Path) -> None:
    (tmp_path / "tiny.bin.part").write_bytes(PAYLOAD)
    path = pull(entry(server.url), tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_bad_checksum_raises_and_keeps_the_bytes_aside(server: Server, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(WeightsError) as exc:
        pull(entry(server.url, sha256=wrong), tmp_path)
    message = str(exc.value)
    assert f"expected {wrong}" in message and f"got {SHA}" in message
    assert "\n" not in message
    assert not (tmp_path / "tiny.bin").exists()
    assert not (tmp_path / "tiny.bin.part").exists()  # the next pull starts over instead of resuming junk
    assert (tmp_path / "tiny.bin.bad").read_bytes() == PAYLOAD


def test_existing_file_with_wrong_digest_is_reported_not_replaced(server: Server, tmp_path: Path) -> None:
    target = tmp_path / "tiny.bin"
    target.write_bytes(b"my own file")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        pull(entry(server.url), tmp_path)
    assert target.read_bytes() == b"my own file"
    assert server.requests == []


def test_http_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="HTTP 404"):
        pull(entry(server.url.replace("model.bin", "missing.bin")), tmp_path)
    server.status_override = 500
    with pytest.raises(WeightsError, match="HTTP 500"):
        pull(entry(server.url), tmp_path)


def test_unpinned_entries_need_explicit_consent(server: Server, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no sha256 is pinned"):
        pull(entry(server.url, sha256=None), tmp_path)
    assert server.requests == []
    path = pull(entry(server.url, sha256=None), tmp_path, allow_unverified=True)
    assert path.read_bytes() == PAYLOAD


def test_verify_checks_size_and_digest(tmp_path: Path) -> None:
    path = tmp_path / "tiny.bin"
    path.write_bytes(PAYLOAD)
    assert verify(entry("http://127.0.0.1/x", size=len(PAYLOAD)), path) == SHA
    with pytest.raises(WeightsError, match="bytes, expected"):
        verify(entry("http://127.0.0.1/x", size=1), path)
    with pytest.raises(WeightsError, match="does not exist"):
        verify(entry("http://127.0.0.1/x"), tmp_path / "nope.bin")
    with pytest.raises(WeightsError, match=f"expected {'1' * 64}, got {SHA}"):
        verify(entry("http://127.0.0.1/x", sha256="1" * 64), path)
