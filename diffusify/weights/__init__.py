"""Model weights: the manifest of known models, downloads with verification, and format importers.

* :mod:`diffusify.weights.manifest`: ``weights/models.yaml`` (``list_models``, ``find``, ``resolve_file``).
* :mod:`diffusify.weights.pull`: ``pull`` (HTTP(S) download with resume and SHA-256 check), ``verify``.
* :mod:`diffusify.weights.ncnn`: ``import_ncnn`` (ncnn ``.param``/``.bin`` to spandrel-loadable
  ``.safetensors``), ``read_post_scale`` / ``read_metadata`` / ``apply_post_scale``.

Submodules are imported on demand; importing this package stays cheap.
"""

from diffusify.weights.errors import WeightsError

__all__ = ["WeightsError"]
