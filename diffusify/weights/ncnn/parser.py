"""Parse ncnn text ``.param`` graphs into :class:`NcnnGraph` / :class:`NcnnLayer`."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffusify.weights.errors import WeightsError

NCNN_MAGIC = 7767517
"""First line of every ncnn text ``.param`` file."""


@dataclass(frozen=True)
class NcnnLayer:
    """One layer line of an ncnn ``.param`` file.

    Attributes:
        type: layer type (``Convolution``, ``PReLU``, ``Interp``...).
        name: layer name, unique in the graph.
        inputs: names of the blobs the layer reads.
        outputs: names of the blobs the layer writes.
        params: ``k=v`` parameters by integer id; array parameters (written ``-233xx=n,v1,...``) are
            stored under their plain id ``xx`` as a list.
        line: 1-based line number in the ``.param`` file, for messages.
    """

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, Any] = field(default_factory=dict)
    line: int = 0

    def get(self, key: int, default: Any = None) -> Any:
        """A parameter value, or ``default`` when the layer does not set it."""
        return self.params.get(key, default)

    def where(self) -> str:
        """``Type 'name' (line N)``, for error messages."""
        return f"{self.type} '{self.name}' (line {self.line})"


@dataclass(frozen=True)
class NcnnGraph:
    """A parsed ncnn ``.param`` graph, layers in file (execution) order.

    Attributes:
        layers: the layers.
        blob_count: the blob count declared on the file's second line.
        source: the file the graph came from, for messages.
    """

    layers: tuple[NcnnLayer, ...]
    blob_count: int
    source: str = "<param>"


def _parse_number(text: str) -> int | float:
    if any(c in text for c in ".eE") and not text.lower().startswith("0x"):
        return float(text)
    return int(text)


def _parse_params(tokens: Sequence[str], where: str) -> dict[int, Any]:
    params: dict[int, Any] = {}
    for token in tokens:
        key_text, sep, value_text = token.partition("=")
        if not sep:
            raise WeightsError(f"{where}: malformed parameter {token!r} (expected id=value)")
        try:
            key = int(key_text)
            if key <= -23300:
                count_text, *values = value_text.split(",")
                count = int(count_text)
                if count != len(values):
                    raise ValueError(f"array declares {count} values but has {len(values)}")
                params[-key - 23300] = [_parse_number(v) for v in values]
            else:
                params[key] = _parse_number(value_text)
        except ValueError as exc:
            raise WeightsError(f"{where}: malformed parameter {token!r} ({exc})") from None
    return params


def parse_param(source: str | Path, *, text: str | None = None) -> NcnnGraph:
    """Parse an ncnn text ``.param`` file.

    Args:
        source: path of the ``.param`` file (also used in messages when ``text`` is given).
        text: the file's contents, when already in memory.

    Returns:
        The graph, layers in file order.

    Raises:
        WeightsError: the file is not a text ncnn graph (binary ``.param.bin`` files are refused) or a line
            is malformed.
    """
    path = Path(source)
    if text is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise WeightsError(f"cannot read ncnn graph {path}: {exc.strerror or exc}") from None
        if len(raw) >= 4 and struct.unpack("<i", raw[:4])[0] == NCNN_MAGIC:
            raise WeightsError(
                f"{path} is a binary .param.bin graph; convert it with the text .param file instead"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WeightsError(f"{path} is not a text ncnn .param file (not UTF-8)") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != str(NCNN_MAGIC):
        raise WeightsError(f"{path} is not an ncnn .param file (first line must be the magic {NCNN_MAGIC})")
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise WeightsError(f"{path}: line 2 must hold the layer and blob counts") from None

    layers: list[NcnnLayer] = []
    for lineno, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{lineno}"
        if len(tokens) < 4:
            raise WeightsError(f"{where}: malformed layer line {line.strip()!r}")
        layer_type, name = tokens[0], tokens[1]
        try:
            n_in, n_out = int(tokens[2]), int(tokens[3])
        except ValueError:
            raise WeightsError(f"{where}: malformed blob counts in layer '{name}'") from None
        blobs = tokens[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise WeightsError(
                f"{where}: layer '{name}' declares {n_in}+{n_out} blobs but lists {len(blobs)}"
            )
        params = _parse_params(tokens[4 + n_in + n_out :], where)
        layers.append(NcnnLayer(layer_type, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params, lineno))
    if len(layers) != layer_count:
        raise WeightsError(f"{path}: header declares {layer_count} layers but the file has {len(layers)}")
    return NcnnGraph(tuple(layers), blob_count, str(path))
