"""Import ncnn models (``.param`` text graph + ``.bin`` weights) as spandrel-loadable safetensors.

ncnn is the inference runtime behind the ``*-ncnn-vulkan`` upscalers, and many super-resolution models are
distributed only in its format. This module reads the text graph, decodes the weight blob, recognises the
network family from the graph's structure and writes a torch state dict with the key names that spandrel's
``ModelLoader`` detects:

* Real-ESRGAN Compact (``SRVGGNetCompact``; e.g. ``realesr-animevideov3``): spandrel ``Compact``.
* ESRGAN / Real-ESRGAN ``RRDBNet`` (e.g. ``realesrgan-x4plus``, ``realesrgan-x4plus-anime``):
  spandrel ``ESRGAN``.
* Real-CUGAN 2x and 3x with squeeze-excitation (``models-se``, ``models-pro``): spandrel ``RealCUGAN``.
  Not supported: Real-CUGAN 4x (its runtime adds the input residual outside the graph) and ``models-nose``
  (spandrel has no such variant). The ``pro`` flag is not part of the graph: it is inferred from the
  ``models-pro`` folder name or given explicitly.

After matching, the importer runs the ncnn graph itself (interpreted with torch) and the converted
spandrel model on a small random input and requires identical results, so a graph that matches by shape
but is wired differently is refused.

Anything else fails with a one-line :class:`~diffusify.weights.errors.WeightsError` naming the layer or the
structure that did not match.

Post-scale:
    Some ncnn graphs end with a resize of the network output. The ``realesr-animevideov3`` x2 and x3 models
    ship the *same* 4x network as x4 and end with a bicubic downscale by 0.5 and 0.75. The importer keeps
    that step as metadata of the converted file (``diffusify.post_scale``, ``diffusify.post_resize``); the
    effective scale of such a model is ``network scale x post_scale``. :func:`read_post_scale` reads it
    back and :func:`apply_post_scale` applies it exactly as ncnn does.

Pre-padding:
    Real-ESRGAN runtimes mirror-pad each frame by 10 px before the network and crop the scaled margin off
    afterwards; the converted file records that as ``diffusify.pre_pad``.


Command line (for conversions recorded in provenance files)::

    python -m diffusify.weights.ncnn MODEL.param MODEL.bin OUT.safetensors --name NAME \\
        --licence BSD-3-Clause --source URL

Submodules, one component each (imports go one way, bottom to top):

* :mod:`~diffusify.weights.ncnn.metadata`: reading the ``diffusify.*`` metadata back at run time
  (:func:`read_metadata`, :func:`read_post_scale`, :func:`apply_post_scale`); imports none of the importer.
* :mod:`~diffusify.weights.ncnn.parser`: the ``.param`` parser (:func:`parse_param`).
* :mod:`~diffusify.weights.ncnn.blobs`: the ``.bin`` weight decoder.
* :mod:`~diffusify.weights.ncnn.match`: the normalised graph and the matchers per network family.
* :mod:`~diffusify.weights.ncnn.interpret`: the torch interpreter that checks a conversion.
* :mod:`~diffusify.weights.ncnn.convert`: :func:`import_ncnn` and :func:`write_safetensors`.
* :mod:`~diffusify.weights.ncnn.cli`: the command line.

Importing this package stays light (no numpy, no torch): it holds the metadata readers; the importer is imported
from its own modules by the code that converts.
"""

from __future__ import annotations

from diffusify.weights.ncnn.metadata import (
    META_PREFIX,
    ModelMetadata,
    apply_post_scale,
    read_metadata,
    read_post_scale,
)

__all__ = ["META_PREFIX", "ModelMetadata", "apply_post_scale", "read_metadata", "read_post_scale"]
