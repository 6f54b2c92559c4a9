"""The studio's back end: a job server with an HTTP API, live events and a small dashboard (an optional extra:
``pip install -e ".[server]"``).

Light on import: FastAPI and uvicorn load when :func:`create_app` or :func:`serve` is called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from diffusify.server.config import ServerConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServerConfig", "create_app", "serve"]


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The job server as an ASGI application (see :mod:`diffusify.server.app`)."""
    from diffusify.server.app import create_app as make

    return make(config)


def serve(config: ServerConfig, **uvicorn_options: Any) -> None:
    """Run the job server until interrupted (Ctrl-C or SIGTERM: running jobs are cancelled gracefully and end as
    interrupted; queued jobs wait for the next start).

    The process's current folder becomes the first root: relative paths of inline recipes start there.

    Raises:
        ValueError: the binding needs a token (see :meth:`ServerConfig.check_binding`).
    """
    import uvicorn

    config.check_binding()
    os.chdir(config.roots[0])
    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level=uvicorn_options.pop("log_level", "warning"),
                timeout_graceful_shutdown=uvicorn_options.pop("timeout_graceful_shutdown", 5), **uvicorn_options)
