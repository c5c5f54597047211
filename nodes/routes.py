"""What the pack adds to ComfyUI's server: a preview video of each built-in sample clip.

Load Video's combo carries ``video_upload`` (ComfyUI's convention): the editor adds an upload
button and previews the selected entry from ``/view?filename=NAME&type=input``. The built-in
entries ``sample-0`` … ``sample-7`` are not files, so the pack's JS sends their previews here
instead: ``GET /videoprune/sample/sample-N.webm``, the clip the node would load (16 frames at the
sample's 4 fps), rendered once into ComfyUI's temp folder as VP8 WebM, which every browser plays.
Nothing is written to the user's input folder.
"""
from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import numpy as np

from pruning_core.errors import VideoError
from pruning_core.video import write_clip

from . import context, videos

ROUTE = "/videoprune/sample/{name}"
PREVIEW_FRAMES = 16
PREVIEW_FPS = 4.0
PREVIEW_SIDE = 224   # the clips are 112 px: shown at twice that, nearest-neighbour, so cells stay sharp
_NAME = re.compile(r"^(sample-\d+)\.webm$")


def preview_dir() -> Path:
    return context.output_dir() / "videoprune_samples"


def render_sample_preview(name: str, out_dir: Path | None = None) -> Path:
    """The WebM preview of a built-in sample (``sample-N``), rendered on first use."""
    if not videos.is_sample(name) or int(name[len(videos.SAMPLE_PREFIX):]) >= videos.NUM_SAMPLES:
        raise VideoError(f"no built-in sample {name!r}")
    out_dir = out_dir or preview_dir()
    path = out_dir / f"{name}.webm"
    if path.is_file() and path.stat().st_size > 0:
        return path
    frames, _, _ = videos.load(name, PREVIEW_FRAMES, 0)
    frames = np.repeat(np.repeat(frames, PREVIEW_SIDE // frames.shape[1], axis=1), PREVIEW_SIDE // frames.shape[2], axis=2)
    write_clip(path, frames, PREVIEW_FPS, codecs=(("VP80", ".webm"),))
    return path


def register(server_module=None) -> bool:
    """Add the route to ComfyUI's running server; False outside ComfyUI (headless runtime, tests)."""
    server_module = server_module or sys.modules.get("server")
    instance = getattr(getattr(server_module, "PromptServer", None), "instance", None)
    if instance is None or not hasattr(instance, "routes"):
        return False
    from aiohttp import web

    @instance.routes.get(ROUTE)
    async def sample_preview(request):
        m = _NAME.match(request.match_info.get("name", ""))
        if not m:
            return web.Response(status=404, text="not a built-in sample preview")
        try:  # encoding takes ~1 s on a busy CPU: off the server's event loop
            path = await asyncio.get_running_loop().run_in_executor(None, render_sample_preview, m.group(1))
        except VideoError as e:
            return web.Response(status=404, text=str(e))
        return web.FileResponse(path, headers={"Content-Type": "video/webm", "Cache-Control": "max-age=3600"})

    return True
