"""Convert a released RIFE 4.25/4.26 checkpoint (``flownet.pkl``) to the bundled fp16 safetensors file.

    python weights/tools/convert_rife.py flownet.pkl weights/rife-4.25.safetensors --source "..."

The checkpoint is read weights-only (no pickled code runs); the training-only ``teacher.*`` and ``caltime.*``
tensors are dropped; the rest is loaded into diffusify's IFNet (strict, so a wrong layout fails here) and stored
as fp16 with a sorted header (reproducible byte for byte).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    import torch
    from safetensors.torch import save_file

    from diffusify.processors.rife import load_rife

    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("out")
    ap.add_argument("--source-note", default="", help="where the checkpoint came from, for the metadata")
    args = ap.parse_args()
    net = load_rife(args.source)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in sorted(net.state_dict().items())}
    digest = hashlib.sha256(Path(args.source).read_bytes()).hexdigest()
    save_file(state, args.out, metadata={"diffusify.architecture": "RIFE-4.25", "diffusify.licence": "MIT",
                                         "diffusify.scale": "1",
                                         "diffusify.source": args.source_note, "diffusify.source_sha256": digest})
    print(f"{args.out}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} parameters, "
          f"sha256 {hashlib.sha256(Path(args.out).read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
