"""The server's settings: one object, made by the ``serve`` command or by a host embedding the app."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field


@dataclass
class ServerConfig:
    """What the job server may touch and how much it accepts.

    Attributes:
        roots: folders that recipes, inputs and outputs must lie in (resolved; the first one is where relative
            paths of inline recipes and of ``input``/``output`` start). Default: the current folder.
        host, port: where to listen.
        token: the bearer token every request must carry (required to listen on anything but loopback).
        workers: how many jobs may run at once (each in a worker process of its own).
        max_queue: how many jobs may wait; one more is answered 429.
        max_body: the largest request body in bytes (413 beyond).
        max_recipe: the largest recipe in bytes, inline or read from a file (413 beyond).
        state_dir: where the jobs database and previews live (default: ``.diffusify-server`` in the first root).
        recipes_dir: the folder whose recipes the dashboard offers (default: the first root).
        keepalive: seconds between keep-alive comments on an idle event stream.
        cancel_grace: seconds a job cancelled with ``now`` may take before its worker is killed.
    """

    roots: list[str] = field(default_factory=lambda: [os.getcwd()])
    host: str = "127.0.0.1"
    port: int = 8188
    token: str | None = None
    workers: int = 2
    max_queue: int = 64
    max_body: int = 1 << 20
    max_recipe: int = 256 << 10
    state_dir: str | None = None
    recipes_dir: str | None = None
    keepalive: float = 15.0
    cancel_grace: float = 10.0

    def __post_init__(self) -> None:
        if not self.roots:
            raise ValueError("at least one root folder is needed")
        self.roots = [os.path.realpath(r) for r in self.roots]
        for r in self.roots:
            if not os.path.isdir(r):
                raise ValueError(f"--root {r}: not a folder")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.max_queue < 1:
            raise ValueError("--max-queue must be at least 1")
        self.state_dir = os.path.abspath(self.state_dir or os.path.join(self.roots[0], ".diffusify-server"))
        self.recipes_dir = os.path.realpath(self.recipes_dir or self.roots[0])

    @property
    def database(self) -> str:
        """The SQLite file of jobs and events."""
        assert self.state_dir is not None
        return os.path.join(self.state_dir, "jobs.sqlite3")

    @property
    def previews(self) -> str:
        """The folder of the jobs' preview images."""
        assert self.state_dir is not None
        return os.path.join(self.state_dir, "previews")

    def check_binding(self) -> None:
        """Raise ValueError when listening on ``host`` needs a token and none is set."""
        if self.token is None and not is_loopback(self.host):
            raise ValueError(f"listening on {self.host} needs --token: anyone who can reach it could run jobs "
                             "and read files under the roots")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("--token must be at least 16 characters (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe())')")


def is_loopback(host: str) -> bool:
    """``host`` names this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
