"""The command's entry point (``diffusify`` and ``python -m diffusify``).

Signal handling goes in before anything else is imported: until the command installs its own handlers, a Ctrl-C
or SIGTERM ends it at once with exit 130 and one line, never with a traceback from inside an import.
"""

from __future__ import annotations

import os
import signal
import sys

BEFORE_START = "interrupted before the run started; nothing was written"


def exit_before_start(json_events: bool) -> None:
    """Leave at once, exit 130: one line, and an ``interrupted`` event with ``--json-events``. Safe in a signal
    handler: os.write, not print (the main thread may be inside a write to the same buffered stream)."""
    if json_events:
        os.write(1, ('{"event": "interrupted", "message": "' + BEFORE_START + '"}\n').encode())
    os.write(2, f"diffusify: {BEFORE_START}\n".encode())
    os._exit(130)


def _early(_signum: int, _frame: object) -> None:
    exit_before_start("--json-events" in sys.argv)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _early)
    from diffusify.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
