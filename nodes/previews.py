"""Image previews for output nodes: PNG files plus the ``ui.images`` entries ComfyUI displays."""
from __future__ import annotations

import hashlib

import cv2
import numpy as np

from pruning_core.errors import VideoPruneError

from . import context


def save_previews(images: list[np.ndarray], kind: str) -> list[dict]:
    """Write RGB uint8 images as PNGs to the preview folder; names come from their content, so a
    re-run overwrites instead of piling up files."""
    out_dir = context.output_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    typ = context.preview_type()
    entries = []
    for i, img in enumerate(images):
        img = np.ascontiguousarray(img, dtype=np.uint8)
        digest = hashlib.blake2b(str(img.shape).encode() + img.tobytes(), digest_size=8).hexdigest()
        name = f"videoprune_{kind}_{digest}_{i:03d}.png"
        if not cv2.imwrite(str(out_dir / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise VideoPruneError(f"cannot write preview {out_dir / name}")
        entries.append({"filename": name, "subfolder": "", "type": typ})
    return entries
