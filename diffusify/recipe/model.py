"""The recipe model: what a validated pipeline file resolves to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

RECIPE_VERSION = 1
TOP_LEVEL_KEYS = ("version", "name", "description", "params", "nodes", "devices", "queue")
NODE_KEYS = ("type", "input", "inputs", "with", "device", "replicas", "queue")
QUEUE_KEYS = ("frames", "bytes")


@dataclass
class QueueBudget:
    """Bound on one edge: at most ``frames`` frames and ``bytes`` bytes waiting (a single larger frame is
    always admitted so a huge frame cannot deadlock an empty queue).

    Four frames absorb the jitter between nodes; more only hold memory (a 1080p float frame is 25 MB, a 4K one
    100 MB) whose first touch costs page faults: measured on 2 cores, 8 frames per edge spent 2.9 s of system
    time on a 300-frame 1080p graph, 4 frames 1.6 s, at the same throughput."""

    frames: int = 4
    bytes: int = 1 << 30


@dataclass
class NodeSpec:
    """One node after validation.

    Attributes:
        id: the node's key in ``nodes``.
        type: processor type name.
        params: the processor's validated parameter model.
        inputs: port -> upstream node id.
        devices: explicit devices (``cpu``, ``cuda:0``...), empty for the pipeline's default.
        replicas: number of worker replicas.
        queue: the budget of this node's input queues, None for the pipeline's default.
    """

    id: str
    type: str
    params: BaseModel
    inputs: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    replicas: int = 1
    queue: QueueBudget | None = None
    line: int = 0


@dataclass
class Recipe:
    """A validated recipe with its parameters resolved."""

    path: str
    name: str
    description: str
    params: dict[str, Any]
    nodes: dict[str, NodeSpec]
    devices: list[str] = field(default_factory=list)
    queue: QueueBudget = field(default_factory=QueueBudget)
