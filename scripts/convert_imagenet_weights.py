"""Convert torchvision's cached ImageNet weights (``.pth``, a pickle) to ``.safetensors``.

HCC Response never unpickles anything (RELIABILITY.md 16). A site that has torchvision's
ImageNet file (for example in ``~/.cache/torch/hub/checkpoints/``) runs this once, outside the
app, to turn it into plain tensors beside the original::

    .venv/bin/python scripts/convert_imagenet_weights.py ~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth

The file is read with ``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors
and plain containers only). ``app.inference.model.load_imagenet_init`` then finds the
``.safetensors`` file beside torchvision's cache entry by itself, or takes it as a path.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(src: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    obj = torch.load(str(src), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{src} does not hold a state dict of tensors")
    dest = src.with_suffix(".safetensors")
    save_file({k: v.contiguous() for k, v in obj.items()}, str(dest))
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"wrote {convert(Path(argv[0]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
