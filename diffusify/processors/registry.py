"""The registry of processor types: the built-ins, listed explicitly, plus third-party plugins.

Plugins register through the ``diffusify.processors`` entry-point group; each entry point names either a
:class:`~diffusify.processors.base.Processor` subclass or a callable returning an iterable of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from importlib import metadata

from diffusify.core.problems import did_you_mean
from diffusify.processors.base import Processor

ENTRY_POINT_GROUP = "diffusify.processors"

# module, class names: imported when the registry is first used. Keep processor modules import-light (torch and
# friends are imported in setup()), so validation stays fast.
_BUILTINS: dict[str, tuple[str, ...]] = {
    "diffusify.processors.video": ("VideoRead", "VideoWrite"),
    "diffusify.processors.image": ("ImageRead", "ImageWrite"),
    "diffusify.processors.synthetic": ("TestPattern", "NullSink"),
    "diffusify.processors.geometry": ("Resize", "Crop"),
    "diffusify.processors.color": ("Color",),
    "diffusify.processors.compose": ("Stack", "Blend", "Diff", "MaskComposite"),
    "diffusify.processors.mask": ("Mask", "MaskThreshold", "MaskDilate", "MaskErode", "MaskFeather", "MaskInvert",
                                  "MaskSmooth", "MaskCombine"),
    "diffusify.processors.classical": ("Denoise", "Sharpen", "Blur"),
    "diffusify.processors.spandrel": ("UpscaleSpandrel", "DenoiseSpandrel", "RestoreSpandrel"),
    "diffusify.processors.generate": ("TextToVideo", "ImageToVideo"),
    "diffusify.processors.temporal": ("SceneDetect", "Dedup", "Fps"),
    "diffusify.processors.rife": ("Interpolate",),
    "diffusify.processors.segment": ("Segment",),
}


class RegistryError(Exception):
    """A processor could not be registered (duplicate or malformed)."""


class Registry:
    """Processor types by name. ``add`` is all-or-nothing and rejects duplicates."""

    def __init__(self, processors: Iterable[type[Processor]] = ()):
        self._types: dict[str, type[Processor]] = {}
        self.plugin_errors: list[str] = []
        self.add(*processors)

    def add(self, *processors: type[Processor]) -> None:
        new: dict[str, type[Processor]] = {}
        for cls in processors:
            if not (isinstance(cls, type) and issubclass(cls, Processor)):
                raise RegistryError(f"{cls!r} is not a Processor subclass")
            name = cls.type_name
            if not name:
                raise RegistryError(f"{cls.__qualname__} has no type_name")
            if name in self._types or name in new:
                raise RegistryError(f"processor type '{name}' is already registered")
            new[name] = cls
        self._types.update(new)

    def copy(self) -> Registry:
        out = Registry()
        out._types = dict(self._types)
        out.plugin_errors = list(self.plugin_errors)
        return out

    def get(self, name: str) -> type[Processor]:
        try:
            return self._types[name]
        except KeyError:
            raise KeyError(f"unknown processor type '{name}'{did_you_mean(name, self._types)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[type[Processor]]:
        return iter(sorted(self._types.values(), key=lambda c: c.type_name))

    def names(self) -> list[str]:
        return sorted(self._types)

    def suggest(self, name: str) -> str:
        return did_you_mean(name, self._types)


def builtin_processors() -> list[type[Processor]]:
    out: list[type[Processor]] = []
    for module_name, names in _BUILTINS.items():
        module = importlib.import_module(module_name)
        out.extend(getattr(module, n) for n in names)
    return out


def _load_plugins(registry: Registry) -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            classes = [obj] if isinstance(obj, type) else list(obj())
            registry.add(*classes)
        except Exception as e:  # a broken plugin must not break the engine; it is reported instead
            registry.plugin_errors.append(f"plugin '{ep.name}' ({ep.value}): {e}")


_default: Registry | None = None


def default_registry() -> Registry:
    """The built-ins plus every installed plugin (loaded once)."""
    global _default
    if _default is None:
        reg = Registry(builtin_processors())
        _load_plugins(reg)
        _default = reg
    return _default


def reset_default_registry() -> None:
    """Forget the cached registry (tests that install plugins use it)."""
    global _default
    _default = None
