"""What a request may reach: files under the roots only, with the token, from this origin, within size bounds.

* Paths are resolved as the system resolves them (``os.path.realpath``: every symbolic link and ``..``), then must
  lie in a root; device files, FIFOs and sockets are refused before anything opens them. A refusal names the path
  and the reason (HTTP 403).
* The token is compared in constant time (:func:`hmac.compare_digest`). A browser that opened ``/?token=...``
  gets it as a same-site cookie, so the dashboard's ``EventSource`` and ``<img>`` requests carry it too.
* Without a token the server listens on loopback only; the ``Host`` header must then name a loopback host (a
  web page cannot reach it by rebinding a name to 127.0.0.1), and a request a browser marks with a foreign
  ``Origin`` is refused (a page elsewhere cannot cancel or submit jobs through the user's browser).
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from diffusify.io.paths import inside, special_kind, unsafe_name
from diffusify.server.config import ServerConfig, is_loopback

COOKIE = "diffusify_token"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PathRefused(Exception):
    """A path a request named lies outside the roots or is not a regular file (HTTP 403)."""


def resolve_path(value: str, roots: list[str], what: str, *, base: str | None = None) -> str:
    """The real path of ``value`` (relative: against ``base``, default the first root) if it lies in a root.

    Raises:
        PathRefused: outside every root (``..``, a symbolic link out, an absolute path elsewhere), a device file,
            a FIFO or a socket, or a name ffmpeg cannot take.
    """
    if not isinstance(value, str) or not value:
        raise PathRefused(f"{what}: an empty path")
    if "\x00" in value or unsafe_name(value):
        raise PathRefused(f"{what} {value!r}: {unsafe_name(value) or 'holds a NUL character'}")
    joined = os.path.join(base or roots[0], os.path.expanduser(value) if value.startswith("~") else value)
    real = os.path.realpath(joined)
    if not any(inside(real, r) for r in roots):
        norm = os.path.normpath(joined)
        how = "it leads out through a symbolic link" if norm != real and any(os.path.commonpath([norm, r]) == r for r in roots) \
            else "it is outside every root"
        raise PathRefused(f"{what} {value}: not under a --root folder ({how}); the server reads and writes only "
                          f"under {', '.join(roots)}")
    kind = special_kind(real)
    if kind is not None and kind != "a folder":
        raise PathRefused(f"{what} {value}: is {kind}, not a regular file")
    return real


def check_inside(path: str, roots: list[str], what: str) -> None:
    """Raise :class:`PathRefused` unless the (absolute) ``path`` lies in a root and is not a special file."""
    resolve_path(path, roots, what, base="/")


def token_ok(config: ServerConfig, supplied: str | None) -> bool:
    """The request's token matches (always true when the server has none)."""
    if config.token is None:
        return True
    if not supplied:
        return False
    return hmac.compare_digest(supplied.encode(), config.token.encode())


class Guard:
    """ASGI middleware: the token, the host and origin checks, and the request body bound.

    Args:
        app: the application it protects.
        config: the server's settings.
    """

    def __init__(self, app: ASGIApp, config: ServerConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        host = headers.get("host", "")
        if self.config.token is None and not is_loopback(urlsplit(f"//{host}").hostname or ""):
            await _reply(send, 403, f"host {host!r} is not a loopback name; the server has no token, so it only "
                         "answers requests addressed to 127.0.0.1 or localhost")
            return
        origin = headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != host:
            await _reply(send, 403, f"requests from {origin} are refused (cross-origin)")
            return
        cookie_token = None
        if self.config.token is not None:
            supplied = None
            auth = headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                supplied = auth[7:].strip()
            elif "token" in query:
                supplied = query["token"][0]
                cookie_token = supplied
            else:
                supplied = _cookie(headers.get("cookie", ""), COOKIE)
            if not token_ok(self.config, supplied):
                await _reply(send, 401, "a valid bearer token is needed (Authorization: Bearer TOKEN)",
                             extra=((b"www-authenticate", b"Bearer"),))
                return
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.config.max_body):
                await _reply(send, 413, f"the request body is over {self.config.max_body} bytes")
                return
            receive = _bounded(receive, self.config.max_body)
        if cookie_token is not None:
            send = _with_cookie(send, cookie_token)
        try:
            await self.app(scope, receive, send)
        except _TooLarge:
            await _reply(send, 413, f"the request body is over {self.config.max_body} bytes")


class _TooLarge(Exception):
    pass


def _bounded(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops a chunked body (no Content-Length) once it passes ``limit`` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return wrapped


def _with_cookie(send: Send, token: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
        await send(message)

    return wrapped


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


async def _reply(send: Send, status: int, detail: str, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})
