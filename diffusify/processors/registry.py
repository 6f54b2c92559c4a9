"""The registry of processor types: the built-ins, listed explicitly, plus third-party plugins.

Plugins register through the ``diffusify.processors`` entry-point group; each entry point names either a
:class:`~diffusify.processors.base.Processor` subclass or a callable returning an iterable of them.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata

from diffusify.core.problems import did_you_mean
from diffusify.processors.base import Processor

ENTRY_POINT_GROUP = "diffusify.processors"

# type name -> (module, class): each module is imported when one of its types is first asked for, so a recipe
# pays for the families it uses (importing all of them took 0.1 s on 2 cores, a sixth of a transcode's start-up).
# Keep processor modules import-light (torch and friends are imported in setup()), so validation stays fast.
_BUILTINS: dict[str, tuple[str, str]] = {
    "video.read": ("diffusify.processors.video", "VideoRead"),
    "video.write": ("diffusify.processors.video", "VideoWrite"),
    "image.read": ("diffusify.processors.image", "ImageRead"),
    "image.write": ("diffusify.processors.image", "ImageWrite"),
    "pattern": ("diffusify.processors.synthetic", "TestPattern"),
    "discard": ("diffusify.processors.synthetic", "NullSink"),
    "resize": ("diffusify.processors.geometry", "Resize"),
    "crop": ("diffusify.processors.geometry", "Crop"),
    "color": ("diffusify.processors.color", "Color"),
    "compose.stack": ("diffusify.processors.compose", "Stack"),
    "compose.blend": ("diffusify.processors.compose", "Blend"),
    "compose.diff": ("diffusify.processors.compose", "Diff"),
    "compose.mask": ("diffusify.processors.compose", "MaskComposite"),
    "mask": ("diffusify.processors.mask", "Mask"),
    "mask.threshold": ("diffusify.processors.mask", "MaskThreshold"),
    "mask.dilate": ("diffusify.processors.mask", "MaskDilate"),
    "mask.erode": ("diffusify.processors.mask", "MaskErode"),
    "mask.feather": ("diffusify.processors.mask", "MaskFeather"),
    "mask.invert": ("diffusify.processors.mask", "MaskInvert"),
    "mask.smooth": ("diffusify.processors.mask", "MaskSmooth"),
    "mask.combine": ("diffusify.processors.mask", "MaskCombine"),
    "denoise": ("diffusify.processors.classical", "Denoise"),
    "sharpen": ("diffusify.processors.classical", "Sharpen"),
    "blur": ("diffusify.processors.classical", "Blur"),
    "upscale.spandrel": ("diffusify.processors.spandrel", "UpscaleSpandrel"),
    "denoise.spandrel": ("diffusify.processors.spandrel", "DenoiseSpandrel"),
    "restore.spandrel": ("diffusify.processors.spandrel", "RestoreSpandrel"),
    "generate.text2video": ("diffusify.processors.generate", "TextToVideo"),
    "generate.image2video": ("diffusify.processors.generate", "ImageToVideo"),
    "scene.detect": ("diffusify.processors.temporal", "SceneDetect"),
    "dedup": ("diffusify.processors.temporal", "Dedup"),
    "fps": ("diffusify.processors.temporal", "Fps"),
    "interpolate.rife": ("diffusify.processors.rife", "Interpolate"),
    "segment": ("diffusify.processors.segment", "Segment"),
}


# Registries change under one lock (the server's request threads share the default registry); a lock of their own
# would keep a registry from being pickled into a Ray task.
_LOCK = threading.Lock()


class RegistryError(Exception):
    """A processor could not be registered (duplicate or malformed)."""


class Registry:
    """Processor types by name. ``add`` is all-or-nothing and rejects duplicates.

    Types may also be known by where they live (``lazy``: type name -> (module, class)) and imported when first
    asked for; iterating imports them all."""

    def __init__(self, processors: Iterable[type[Processor]] = (), *, lazy: Mapping[str, tuple[str, str]] = {}):
        self._types: dict[str, type[Processor]] = {}
        self._lazy: dict[str, tuple[str, str]] = dict(lazy)
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
            if name in self or name in new:
                raise RegistryError(f"processor type '{name}' is already registered")
            new[name] = cls
        with _LOCK:
            self._types.update(new)

    def copy(self) -> Registry:
        out = Registry()
        with _LOCK:
            out._types = dict(self._types)
            out._lazy = dict(self._lazy)
        out.plugin_errors = list(self.plugin_errors)
        return out

    def get(self, name: str) -> type[Processor]:
        with _LOCK:
            cls, where = self._types.get(name), self._lazy.get(name)
        if cls is not None:
            return cls
        if where is None:
            raise KeyError(f"unknown processor type '{name}'{did_you_mean(name, self.names())}")
        cls = getattr(importlib.import_module(where[0]), where[1])
        if cls.type_name != name:
            raise RegistryError(f"{where[0]}.{where[1]} registers as '{cls.type_name}', not '{name}'")
        with _LOCK:  # known as a class before it stops being known by its module
            self._types[name] = cls
            self._lazy.pop(name, None)
        return cls

    def __contains__(self, name: object) -> bool:
        with _LOCK:
            return name in self._types or name in self._lazy

    def __iter__(self) -> Iterator[type[Processor]]:
        return iter([self.get(name) for name in self.names()])

    def names(self) -> list[str]:
        with _LOCK:
            return sorted({*self._types, *self._lazy})

    def suggest(self, name: str) -> str:
        return did_you_mean(name, self.names())


def builtin_processors() -> list[type[Processor]]:
    """Every built-in processor class (all their modules imported)."""
    return list(Registry(lazy=_BUILTINS))


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
        reg = Registry(lazy=_BUILTINS)
        _load_plugins(reg)
        _default = reg
    return _default


def reset_default_registry() -> None:
    """Forget the cached registry (tests that install plugins use it)."""
    global _default
    _default = None
