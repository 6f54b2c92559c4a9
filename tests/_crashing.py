"""A test processor that kills its own process once (a worker or a node dying mid-way), for the Ray executor's
retry test. Importable by Ray's worker processes (the tests put the project on their PYTHONPATH)."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from diffusify.processors.base import Params, Processor


class CrashOnceParams(Params):
    marker: str = Field(description="A file that does not exist yet: the first process to reach `at` creates it "
                                    "and kills itself; later ones pass the frames on.")
    at: int = Field(3, ge=0, description="Frame index (within the segment) at which to die.")


class CrashOnce(Processor):
    """Passes frames on; the first process to reach frame ``at`` dies of SIGKILL (no cleanup, like a lost node)."""

    type_name = "test.crash_once"
    Params = CrashOnceParams

    def _process(self, frames: Mapping[str, Any]) -> Any:
        f = frames["input"]
        if f.index == self.params.at:
            try:
                fd = os.open(self.params.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return f.data
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return f.data
