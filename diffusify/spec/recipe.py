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
    always admitted so a huge frame cannot deadlock an empty queue)."""

    frames: int = 8
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
