"""Peak memory of preprocessing is bounded by the model input, not the source resolution (issue 13).

Each measurement runs in a fresh process and reads its peak RSS before and after: ``VmHWM`` of
/proc/self/status, the high-water mark of the process's own memory map (``ru_maxrss`` would carry
the forking test process's peak across exec, so a large test session would hide everything).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys
import numpy as np
from pruning_core.pixels import decode_transform, frames_to_pixels
from pruning_core.preprocessing import read_preprocessing
from pruning_core.video import load_video

def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

pre = read_preprocessing(None, "llava_onevision", {"image_size": 384})
frames_to_pixels(np.zeros((2, 64, 64, 3), np.uint8), pre)  # warm the kernels up
mode, arg = sys.argv[1], sys.argv[2]
if mode == "array":
    t, h, w = (int(v) for v in arg.split("x"))
    frames = np.random.default_rng(0).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    base = peak_mb()
    out = frames_to_pixels(frames, pre)
    print(json.dumps({"delta_mb": peak_mb() - base, "out_mb": out.numel() * 4 / 2 ** 20,
                      "source_mb": frames.nbytes / 2 ** 20}))
else:  # the model-size decode first (lower peak), then the full-resolution one raises the high-water mark
    base = peak_mb()
    fitted = load_video(arg, num_frames=8, frame_transform=decode_transform(pre))
    fitted_mb = peak_mb() - base
    shape = list(fitted.frames.shape)
    del fitted
    plain = load_video(arg, num_frames=8)
    print(json.dumps({"fitted_mb": fitted_mb, "plain_mb": peak_mb() - base, "fitted_shape": shape,
                      "plain_shape": list(plain.frames.shape), "plain_out_mb": plain.frames.nbytes / 2 ** 20}))
"""


def _child(*args) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_pixels_of_a_large_clip_peak_near_the_model_input_size():
    m = _child("array", "4x2400x3200")  # 88 MB of uint8 frames; float32 of them would be 352 MB
    assert m["delta_mb"] < 2 * m["out_mb"] + 40, m  # the output, one frame's work, allocator slack
    assert m["delta_mb"] < m["source_mb"] / 4, m


@pytest.fixture(scope="module")
def big_mp4(tmp_path_factory):
    import cv2
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    frame = np.random.default_rng(1).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (2000, 1500))
    for i in range(10):
        vw.write(np.roll(frame, 9 * i, axis=1))
    vw.release()
    return str(path)


def test_decoding_with_the_model_transform_never_holds_the_full_resolution_clip(big_mp4):
    m = _child("decode", big_mp4)
    assert m["fitted_shape"] == [8, 384, 384, 3] and m["plain_shape"] == [8, 1500, 2000, 3]
    # the full-resolution output (69 MB) is never allocated; the decoder's own buffers count in both
    assert m["fitted_mb"] < m["plain_mb"] - 0.7 * m["plain_out_mb"], m
