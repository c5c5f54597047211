"""Load Video in the editor: an upload button and a preview, as on ComfyUI's own Load Video, and
preview videos for the built-in sample entries (which are no files) from the pack's route."""
import asyncio
import types

import cv2
import numpy as np
import pytest

from nodes import routes, videos
from nodes.pack import NODE_CLASS_MAPPINGS
from pruning_core.errors import VideoError


def test_load_video_combo_asks_the_editor_for_an_upload_button_and_preview():
    choices, opts = NODE_CLASS_MAPPINGS["VideoPruneLoadVideo"].INPUT_TYPES()["required"]["video"]
    assert opts["video_upload"] is True and opts["default"] == "sample-0" and "sample-7" in choices


def test_a_sample_preview_is_the_clip_the_node_loads_as_webm(tmp_path):
    path = routes.render_sample_preview("sample-2", tmp_path)
    assert path.name == "sample-2.webm" and path.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML (WebM)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    clip, _, _ = videos.load("sample-2", routes.PREVIEW_FRAMES, 0)
    assert len(frames) == routes.PREVIEW_FRAMES and frames[0].shape == (routes.PREVIEW_SIDE, routes.PREVIEW_SIDE, 3)
    # lossy VP8, upscaled 2×: each frame still looks like the clip's frame
    small = np.stack([cv2.resize(f, clip.shape[2:0:-1], interpolation=cv2.INTER_AREA) for f in frames]).astype(float)
    assert np.abs(small - clip.astype(float)).mean() < 12


def test_a_sample_preview_is_rendered_once(tmp_path):
    first = routes.render_sample_preview("sample-0", tmp_path)
    mtime = first.stat().st_mtime_ns
    assert routes.render_sample_preview("sample-0", tmp_path).stat().st_mtime_ns == mtime


@pytest.mark.parametrize("name", ["sample-8", "sample-x", "clip.mp4", "../sample-1"])
def test_only_built_in_samples_have_previews(name, tmp_path):
    with pytest.raises(VideoError):
        routes.render_sample_preview(name, tmp_path)


def test_outside_comfyui_no_route_is_registered():
    assert routes.register(types.SimpleNamespace()) is False


def test_inside_comfyui_the_route_serves_samples_and_refuses_other_names(tmp_path, monkeypatch):
    web = pytest.importorskip("aiohttp.web")  # ComfyUI's server library
    table = web.RouteTableDef()
    server = types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=types.SimpleNamespace(routes=table)))
    monkeypatch.setattr(routes, "preview_dir", lambda: tmp_path)
    assert routes.register(server) is True
    (route,) = [r for r in table if r.path == routes.ROUTE]

    def call(name):
        req = types.SimpleNamespace(match_info={"name": name})
        return asyncio.run(route.handler(req))

    ok = call("sample-1.webm")
    assert isinstance(ok, web.FileResponse) and ok.headers["Content-Type"] == "video/webm"
    assert (tmp_path / "sample-1.webm").is_file()
    assert call("sample-1").status == 404 and call("sample-9.webm").status == 404
    assert call("..%2Fsecret.webm").status == 404
