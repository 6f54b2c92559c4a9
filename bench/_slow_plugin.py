"""A processor that costs a fixed time per frame without using the CPU (like a GPU kernel), for benchmarks."""

from __future__ import annotations

import time

from pydantic import Field

from diffusify import Params, Processor


class SleepParams(Params):
    ms: float = Field(20.0, ge=0, description="Milliseconds per frame.")


class Sleep(Processor):
    """Sleep per frame and pass the frame on."""

    type_name = "bench.sleep"
    Params = SleepParams

    def _process(self, frames):
        time.sleep(self.params.ms / 1000)
        return frames["input"].data
