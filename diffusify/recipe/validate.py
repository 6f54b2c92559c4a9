"""Validate a recipe: structure, parameters, references, the graph and the streams, all problems at once.

Every user mistake becomes a :class:`~diffusify.core.problems.Problem` with the file, line and column of the
offending key or value; nothing here raises for bad input.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from diffusify.core.problems import Problem, did_you_mean
from diffusify.processors.base import Processor, path_fields
from diffusify.processors.registry import Registry, default_registry
from diffusify.recipe.model import (
    NODE_KEYS,
    QUEUE_KEYS,
    RECIPE_VERSION,
    TOP_LEVEL_KEYS,
    NodeSpec,
    QueueBudget,
    Recipe,
)
from diffusify.recipe.params import CLI_FILE, NAME_RE, PARAM_RE, Params
from diffusify.recipe.yamlpos import Path, Positions, dotted, load_yaml

_DEVICE_RE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)\Z")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


@dataclass
class Parsed:
    """A recipe read and checked as a language (structure, parameters, references): the graph's input.

    Attributes:
        recipe: the resolved recipe (nodes with an error are left out of it).
        reporter: collects problems at YAML positions; the graph checks add theirs to it.
        classes: node id -> processor class, for every node in ``recipe``.
        all_ids: every node id written in the file, valid or not.
        referenced: ids that some node names as an input (not dead ends even when that node has an error).
    """

    recipe: Recipe | None
    reporter: Reporter
    classes: dict[str, type[Processor]] = field(default_factory=dict)
    all_ids: list[str] = field(default_factory=list)
    referenced: set[str] = field(default_factory=set)
    max_frames: int | None = None


def parse_size(value: Any) -> int | None:
    """``"512MB"``, ``"2GiB"``, ``1000000`` -> bytes; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    m = _SIZE_RE.match(str(value))
    if not m:
        return None
    unit = (m.group(2) or "").lower().rstrip("b").rstrip("i")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
    return int(float(m.group(1)) * mult) or None


class _Ids(list):
    """Node ids in file order (for suggestions), with set membership (for reference checks)."""

    def __init__(self, ids: Any):
        super().__init__(ids)
        self._set = set(self)

    def __contains__(self, item: object) -> bool:
        return item in self._set


class Reporter:
    """Collects problems, each placed at the YAML position of the key or value it is about."""

    def __init__(self, file: str, pos: Positions):
        self.file = file
        self.pos = pos
        self.problems: list[Problem] = []

    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        line, col = self.pos.of(path, key=key)
        self.problems.append(Problem(self.file, line, col, dotted(path), message))

    def warn(self, path: Path, message: str, *, key: bool = False) -> None:
        line, col = self.pos.of(path, key=key)
        self.problems.append(Problem(self.file, line, col, dotted(path), message, "warning"))

    def has_error(self, path: Path) -> bool:
        """An error is already reported at ``path`` (a derived problem there would say the same again)."""
        return any(p.severity == "error" and p.path == dotted(path) for p in self.problems)

    def raw_keys(self, path: Path) -> set[str]:
        """The keys written under ``path`` in the file."""
        n = len(path) + 1
        return {str(k[-1]) for k in self.pos.keys if len(k) == n and k[:-1] == path}


def _unknown(what: str, name: Any, choices: list[str] | tuple[str, ...]) -> str:
    """``unknown KIND 'x' (did you mean 'y'?)``, or the list of valid names when none is close."""
    hint = did_you_mean(str(name), choices)
    if not hint:
        hint = f" (use one of: {', '.join(choices)})" if choices else " (it takes none)"
    return f"unknown {what} '{name}'{hint}"


def _pydantic_message(err: Mapping[str, Any], known: list[str]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    loc = err["loc"]
    if kind == "extra_forbidden":
        return _unknown("parameter", loc[-1], known)
    if kind == "missing":
        return "required parameter is missing"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values())) if ctx else "?"
        return f"must be {bounds[kind]} {limit} (got {got!r})"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "?"))
        choices = re.findall(r"'([^']*)'", expected)
        return f"must be one of {expected} (got {got!r}){did_you_mean(str(got), choices)}"
    if kind == "multiple_of":
        return f"must be a multiple of {ctx.get('multiple_of')} (got {got!r})"
    if kind == "string_pattern_mismatch":
        return f"has an invalid form (got {got!r})"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        what = kind.split("_")[0]
        names = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
                 "list": "a list", "dict": "a mapping"}
        return f"must be {names.get(what, what)} (got {got!r})"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[:1].lower() + msg[1:]


class RecipeValidator:
    """Validates one recipe text. Use :func:`validate_text` / :func:`validate_file`."""

    def __init__(self, text: str, file: str, *, registry: Registry | None = None,
                 overrides: Mapping[str, str] | None = None, devices: list[str] | None = None,
                 max_frames: int | None = None):
        self.text = text
        self.file = file
        self.registry = registry or default_registry()
        self.overrides = dict(overrides or {})
        self.cli_devices = devices
        self.max_frames = max_frames
        self.referenced: set[str] = set()
        self.raw_types: dict[str, Any] = {}
        self.raw_data: Any = None
        # relative paths in the recipe are relative to its folder; a recipe given as text has none
        self.base_dir = os.path.dirname(os.path.abspath(file)) if not file.startswith("<") else os.getcwd()

    # ---- top level -------------------------------------------------------------------------------------------
    def run(self) -> Parsed:
        data, pos, issues = load_yaml(self.text)
        c = self.c = Reporter(self.file, pos)
        for issue in issues:
            c.problems.append(Problem(self.file, issue.line, issue.col, dotted(issue.path), issue.message))
        if data is None:
            if not issues:
                c.error((), "the file is empty; a recipe needs at least 'version' and 'nodes'")
            return Parsed(None, c)
        if not isinstance(data, dict):
            kind = {"str": "string", "int": "number", "float": "number", "bool": "true/false"}.get(
                type(data).__name__, type(data).__name__)
            c.error((), f"a recipe is a mapping of keys (version, nodes, ...), got a {kind}; start the file with "
                    f"'version: {RECIPE_VERSION}' and a 'nodes:' mapping")
            return Parsed(None, c)

        for key in data:
            if key not in TOP_LEVEL_KEYS:
                c.error((key,), _unknown("top-level key", key, TOP_LEVEL_KEYS), key=True)
        version = data.get("version")
        if "version" not in data:
            c.error((), f"missing 'version' (add 'version: {RECIPE_VERSION}')")
        elif version != RECIPE_VERSION or isinstance(version, bool):
            if isinstance(version, str) and version.strip() == str(RECIPE_VERSION):
                c.error(("version",), f"version must be the number {RECIPE_VERSION}, not the string {version!r} "
                        f"(write 'version: {RECIPE_VERSION}' without quotes)")
            else:
                c.error(("version",), f"unsupported version {version!r}; this engine reads version "
                        f"{RECIPE_VERSION} (write 'version: {RECIPE_VERSION}')")
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                c.error((key,), f"must be a string (got {data[key]!r})")

        self.raw_data = data
        node_sets = {k: v for k, v in self.overrides.items() if "." in k}
        self.params = Params(c, {k: v for k, v in self.overrides.items() if "." not in k})
        params = self.params.read(data.get("params"))
        resolved = self.params.substitute(data)
        if node_sets:
            self._set_node_params(resolved, node_sets)
        devices = self._devices(resolved.get("devices"), ("devices",)) if "devices" in resolved else []
        if self.cli_devices:
            for d in self.cli_devices:
                if not _DEVICE_RE.match(d):
                    c.problems.append(Problem(CLI_FILE, 0, 0, "--device",
                                              f"bad device '{d}': use auto, cpu, cuda, cuda:N or mps"))
            devices = list(self.cli_devices)
        queue = self._queue(resolved.get("queue"), ("queue",)) if "queue" in resolved else QueueBudget()

        nodes_raw = resolved.get("nodes")
        if "nodes" not in data:
            c.error((), "missing 'nodes': a recipe needs at least a source and a writer")
            nodes_raw = {}
        elif not isinstance(nodes_raw, dict) or not nodes_raw:
            c.error(("nodes",), "must be a mapping of node ids to nodes, with at least a source and a writer")
            nodes_raw = {}

        nodes: dict[str, NodeSpec] = {}
        classes: dict[str, type[Processor]] = {}
        self.raw_types = {str(k): v.get("type") for k, v in nodes_raw.items() if isinstance(v, dict)}
        # a node named by another node's input is not a dead end, even when that other node has an error
        for raw in nodes_raw.values():
            if isinstance(raw, dict):
                refs = raw.get("inputs")
                for ref in [raw.get("input"), *(refs.values() if isinstance(refs, dict) else ())]:
                    if isinstance(ref, str):
                        self.referenced.add(ref)
        ids = _Ids(str(k) for k in nodes_raw)  # membership in O(1): a 10,000-node chain checks 10,000 refs
        for node_id, raw in nodes_raw.items():
            spec = self._node(str(node_id), raw, ids)
            if spec is not None:
                nodes[spec.id] = spec
                classes[spec.id] = self.registry.get(spec.type)

        recipe = Recipe(
            path=self.file,
            name=str(data.get("name") or os.path.splitext(os.path.basename(self.file))[0]),
            description=str(data.get("description") or ""),
            params=params,
            nodes=nodes,
            devices=devices,
            queue=queue,
        )
        return Parsed(recipe, c, classes, [str(k) for k in nodes_raw], self.referenced, self.max_frames)

    def _set_node_params(self, resolved: dict[str, Any], sets: Mapping[str, str]) -> None:
        """``--set NODE.PARAM=value``: the value (read as YAML: 16, true, none, text) replaces the node's
        parameter, and is validated like the file's own."""
        nodes = resolved.get("nodes")
        if not isinstance(nodes, dict):
            return
        for key, text in sets.items():
            nid, _, param = key.partition(".")
            flag = f"--set {key}"
            node = nodes.get(nid)
            if not isinstance(node, dict):
                self.c.problems.append(Problem(CLI_FILE, 0, 0, flag, f"the recipe has no node '{nid}'"
                                               f"{did_you_mean(nid, [str(k) for k in nodes])} (its nodes: "
                                               f"{', '.join(str(k) for k in nodes)})"))
                continue
            type_name = node.get("type")
            if not isinstance(type_name, str) or type_name not in self.registry:
                continue  # the node's own error says it
            fields = list(self.registry.get(type_name).Params.model_fields)
            if param not in fields:
                self.c.problems.append(Problem(CLI_FILE, 0, 0, flag, f"{type_name} has no parameter '{param}'"
                                               f"{did_you_mean(param, fields)} (its parameters: {', '.join(fields)})"))
                continue
            value, _, issues = load_yaml(text)
            with_ = node.get("with")
            if not isinstance(with_, dict):
                with_ = node["with"] = {}
            with_[param] = text if issues or value is None and text.strip().lower() not in ("null", "none", "~") \
                else value
            self.params.cli_rooted.add(("nodes", nid, "with", param))

    # ---- small sections --------------------------------------------------------------------------------------
    def _devices(self, raw: Any, path: Path) -> list[str]:
        values = raw if isinstance(raw, list) else [raw]
        out = []
        for i, d in enumerate(values):
            p = path + (i,) if isinstance(raw, list) else path
            if not isinstance(d, str) or not _DEVICE_RE.match(d):
                self.c.error(p, f"bad device {d!r}: use auto, cpu, cuda, cuda:N or mps")
            else:
                out.append(d)
        if isinstance(raw, list) and not raw:
            self.c.error(path, "the device list is empty; list at least one device, or remove the key")
        return out

    def _queue(self, raw: Any, path: Path) -> QueueBudget:
        q = QueueBudget()
        if not isinstance(raw, dict):
            self.c.error(path, "must be a mapping with 'frames' and/or 'bytes'")
            return q
        for key, value in raw.items():
            if key == "frames":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    self.c.error(path + (key,), f"must be an integer >= 1 (got {value!r})")
                else:
                    q.frames = value
            elif key == "bytes":
                size = parse_size(value)
                if size is None:
                    self.c.error(path + (key,), f"must be a size such as 512MB or 2GiB (got {value!r})")
                else:
                    q.bytes = size
            else:
                self.c.error(path + (key,), _unknown("queue key", key, QUEUE_KEYS), key=True)
        return q

    # ---- nodes -----------------------------------------------------------------------------------------------
    def _node(self, node_id: str, raw: Any, all_ids: list[str]) -> NodeSpec | None:
        c = self.c
        path: Path = ("nodes", node_id)
        if not NAME_RE.match(node_id):
            c.error(path, f"bad node id {node_id!r}: start with a letter or '_', then use letters, digits, "
                    "'_' or '-'", key=True)
        if not isinstance(raw, dict):
            c.error(path, "a node is a mapping with at least 'type' (e.g. {type: resize, input: src})")
            return None
        for key in raw:
            if key not in NODE_KEYS:
                c.error(path + (key,), _unknown("node key", key, NODE_KEYS), key=True)
        type_name = raw.get("type")
        if type_name is None:
            c.error(path, "missing 'type': add 'type: NAME' (see `diffusify processors`)", key=True)
            return None
        if not isinstance(type_name, str) or type_name not in self.registry:
            c.error(path + ("type",), f"unknown processor type '{type_name}'{self.registry.suggest(str(type_name))}"
                    " (see `diffusify processors`)")
            return None
        cls = self.registry.get(type_name)
        spec_ok = True

        # parameters
        with_raw = raw.get("with", {})
        if with_raw is None:
            with_raw = {}
        params: BaseModel | None = None
        if not isinstance(with_raw, dict):
            c.error(path + ("with",), "must be a mapping of parameter names to values")
            spec_ok = False
        else:
            try:
                params = cls.Params.model_validate(with_raw)
            except ValidationError as e:
                spec_ok = False
                known = list(cls.Params.model_fields)
                for err in e.errors():
                    loc = tuple(err["loc"])
                    field_path = path + ("with",) + loc
                    is_key = err["type"] == "extra_forbidden"
                    if err["type"] == "missing" or not loc:
                        field_path = path + ("with",) if "with" in raw else path
                        msg = _pydantic_message(err, known)
                        if loc:
                            msg = f"missing required parameter '{loc[0]}'"
                        c.error(field_path, msg, key=not loc or "with" not in raw)
                    else:
                        # pydantic may append the type it tried (e.g. ('tile', 'int')): point at the field
                        while len(field_path) > 3 and field_path not in c.pos.values and field_path not in c.pos.keys:
                            field_path = field_path[:-1]
                        c.error(field_path, _pydantic_message(err, known) + self._origin(field_path), key=is_key)
                # only unknown keys: the rest of the node is checked too (its streams, its writer settings), so one
                # typo does not hide the next problem; the node never runs, as the recipe has an error
                unknown = {err["loc"][0] for err in e.errors() if err["type"] == "extra_forbidden" and err["loc"]}
                if unknown and all(err["type"] == "extra_forbidden" for err in e.errors()):
                    try:
                        params = cls.Params.model_validate({k: v for k, v in with_raw.items() if k not in unknown})
                        spec_ok = True
                    except ValidationError:
                        params = None

        # inputs
        inputs: dict[str, str] = {}
        ports = cls.port_names()
        required = cls.required_ports()
        # each wiring mistake is reported once: a malformed 'input'/'inputs' does not also count as missing ports
        wired = True
        suggested: set[str] = set()  # ports a misspelt port was matched to: not reported again as missing
        if "input" in raw and "inputs" in raw:
            c.error(path + ("inputs",), "use either 'input' or 'inputs', not both", key=True)
        if not ports and ("input" in raw or "inputs" in raw):
            key = "input" if "input" in raw else "inputs"
            c.error(path + (key,), f"{type_name} is a source and takes no input; remove '{key}'", key=True)
        elif "input" in raw:
            ref = raw["input"]
            if len(required) > 1:
                c.error(path + ("input",), f"{type_name} has several ports ({', '.join(required)}); use "
                        f"'inputs: {{{required[0]}: ..., {required[1]}: ...}}'", key=True)
                wired = False
            elif self._ref(ref, path + ("input",), all_ids, node_id):
                inputs[ports[0]] = ref
            else:
                wired = False
        elif "inputs" in raw:
            refs = raw["inputs"]
            if not isinstance(refs, dict):
                c.error(path + ("inputs",), "must be a mapping of port names to node ids, e.g. "
                        f"{{{', '.join(f'{p}: NODE' for p in ports)}}}")
                wired = False
            else:
                for port, ref in refs.items():
                    if port not in ports:
                        hint = did_you_mean(str(port), ports)
                        if hint:
                            suggested.add(hint.split("'")[1])
                        c.error(path + ("inputs", port), f"unknown port '{port}' of {type_name}"
                                f"{hint} (ports: {', '.join(ports)})", key=True)
                    elif self._ref(ref, path + ("inputs", port), all_ids, node_id):
                        inputs[str(port)] = ref
                    else:
                        wired = False
        if ports and wired:
            for port in required:
                if port in inputs or port in suggested:
                    continue
                if len(required) == 1 and "inputs" not in raw:
                    c.error(path, f"missing 'input': {type_name} needs an input node (add 'input: NODE_ID')",
                            key=True)
                else:
                    c.error(path, f"missing input port '{port}' of {type_name}; add '{port}: NODE_ID' under "
                            f"'inputs' (ports: {', '.join(required)})", key=True)
        if not wired or any(port not in inputs for port in required):
            spec_ok = False

        devices: list[str] = []
        if "device" in raw:
            devices = self._devices(raw["device"], path + ("device",))
            if cls.resources.device == "cpu" and any(d not in ("cpu", "auto") for d in devices):
                c.error(path + ("device",), f"{type_name} runs on the CPU only; use 'device: cpu' or remove "
                        "'device'")
        replicas = 1
        if "replicas" in raw:
            r = raw["replicas"]
            if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r > 64:
                c.error(path + ("replicas",), f"must be an integer from 1 to 64 (got {r!r})")
            elif r > 1 and not cls.replicable():
                c.error(path + ("replicas",), f"{type_name} cannot be replicated (it is a "
                        f"{'sink' if cls.is_sink else 'source' if cls.is_source() else cls.temporal.value} node); "
                        "remove 'replicas'")
            elif cls.resources.max_replicas and r > cls.resources.max_replicas:
                c.error(path + ("replicas",), f"{type_name} allows at most {cls.resources.max_replicas} replicas")
            else:
                replicas = r
        queue = self._queue(raw["queue"], path + ("queue",)) if "queue" in raw else None

        # node references inside parameters (e.g. video.write's copy_streams_from)
        for ref_param in getattr(cls, "node_refs", ()):
            ref = with_raw.get(ref_param) if isinstance(with_raw, dict) else None
            if ref is not None and ref != "none":
                self._ref(ref, path + ("with", ref_param), all_ids, node_id, frames=False)

        if not spec_ok or params is None:
            return None
        params = self._resolve_paths(params, path)
        return NodeSpec(id=node_id, type=type_name, params=params, inputs=inputs, devices=devices,
                        replicas=replicas, queue=queue, line=self.c.pos.of(path, key=True)[0])

    def _resolve_paths(self, params: BaseModel, path: Path) -> BaseModel:
        """Relative file parameters made absolute where they were written: a value written in the recipe
        against the recipe's folder, one that starts with a command-line value against the current folder."""
        update = {}
        for name, kind in path_fields(type(params)).items():
            value = getattr(params, name)
            if not isinstance(value, str) or not value or os.path.isabs(value):
                continue
            base = os.getcwd() if path + ("with", name) in self.params.cli_rooted else self.base_dir
            # the folder resolved as the system resolves it: "lnk/../x" goes through the link, never collapsed by
            # text (normpath would name another file than the one the system opens)
            folder, leaf = os.path.split(os.path.join(base, value))
            joined = os.path.join(os.path.realpath(folder), leaf)
            if kind == "model" and not os.path.exists(joined):
                continue  # a name (a manifest entry, a hub id), not a file here
            update[name] = joined
        return params.model_copy(update=update) if update else params

    def _origin(self, path: Path) -> str:
        """`` (from '${name}')`` when the value at ``path`` was written as a parameter reference."""
        raw: Any = self.raw_data
        for part in path:
            if not isinstance(raw, dict):
                return ""
            raw = next((v for k, v in raw.items() if str(k) == str(part)), None)
        if isinstance(raw, str) and any(m.group(1) is not None for m in PARAM_RE.finditer(raw)):
            return f" (from '{raw}')"
        return ""

    def _ref(self, ref: Any, path: Path, all_ids: list[str], node_id: str, *, frames: bool = True) -> bool:
        """Check a reference to another node; ``frames``: the reference takes that node's frames."""
        if isinstance(ref, str):
            self.referenced.add(ref)
        if not isinstance(ref, str):
            self.c.error(path, f"must be a node id (got {ref!r})")
            return False
        if ref == node_id:
            self.c.error(path, f"node '{node_id}' cannot take its own output (cycle: {node_id} -> {node_id}); "
                         "take the input from another node")
            return False
        if ref not in all_ids:
            self.c.error(path, f"unknown node '{ref}'{did_you_mean(ref, all_ids)}")
            return False
        ref_type = self.raw_types.get(ref)
        if frames and isinstance(ref_type, str) and ref_type in self.registry \
                and self.registry.get(ref_type).is_sink:
            self.c.error(path, f"node '{ref}' is a {ref_type} (a writer) and has no output; take the frames from "
                         f"the node that feeds '{ref}' instead")
            return False
        return True



def parse_text(text: str, file: str = "<recipe>", **kwargs: Any) -> Parsed:
    """Read a recipe given as text. See :class:`RecipeValidator` for the keyword arguments."""
    return RecipeValidator(text, file, **kwargs).run()


def parse_file(path: str, **kwargs: Any) -> Parsed:
    """Read a recipe file; an unreadable file is reported as a problem, not raised."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        reporter = Reporter(path, Positions())
        reporter.problems.append(Problem(path, 0, 0, "", f"cannot read the recipe: {reason}"))
        return Parsed(None, reporter)
    return parse_text(text, path, **kwargs)
