"""The command's entry point (``diffusify`` and ``python -m diffusify``).

Signal handling goes in before anything else is imported: until the command installs its own handlers, a Ctrl-C
or SIGTERM ends it at once with exit 130 and one line, never with a traceback from inside an import.
"""

from __future__ import annotations

import os
import signal
import sys


def _early(_signum: int, _frame: object) -> None:
    message = "interrupted before the run started; nothing was written"
    if "--json-events" in sys.argv:
        os.write(1, ('{"event": "interrupted", "message": "' + message + '"}\n').encode())
    os.write(2, f"diffusify: {message}\n".encode())
    os._exit(130)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _early)
    from diffusify.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
