"""Our answer path equals the REAL transformers processors + generate (needs torchvision).

Runs only where the HF video processors load (torch 2.14.1 + torchvision 0.29.1, e.g. /work/venv214);
skips cleanly elsewhere. The comparison itself lives in tools/real_processor_check.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torchvision")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import real_processor_check as rpc  # noqa: E402

BACKBONES = ["llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("real-processors")
    for name, k, w, h, fps, n in rpc.CASES:
        rpc.write_clip(d / f"{name}.mp4", w, h, fps, n, seed=k)
    return d


@pytest.fixture(scope="module")
def checkpoints(workdir):
    for kind in BACKBONES:
        rpc.build_checkpoint(kind, workdir / kind)
    return workdir


def test_uint8_interpolate_is_bit_identical_to_torchvision_resize():
    import torch
    import torchvision.transforms.v2.functional as tvF
    from pruning_core.pixels import resize_u8
    x = torch.randint(0, 256, (2, 3, 333, 222), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for size in [(384, 384), (112, 84), (700, 500), (29, 31)]:
        ref = tvF.resize(x, list(size), interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
        assert torch.equal(resize_u8(x, size), ref)


@pytest.mark.parametrize("case", [c[0] for c in rpc.CASES])
@pytest.mark.parametrize("kind", BACKBONES)
def test_cli_equals_autoprocessor_and_generate(checkpoints, kind, case):
    k = next(c[1] for c in rpc.CASES if c[0] == case)
    c = rpc.compare(kind, checkpoints / kind, checkpoints / f"{case}.mp4", k, max_new_tokens=4)
    assert c["pixel_shape_equal"] and c["pixel_max_abs_diff"] <= 1e-5, c
    assert c["prompt_ids_equal"], c
    assert c["visual_tokens"][0] == c["visual_tokens"][1]
    assert c["tokens_ours_cli"] == c["tokens_transformers"] == c["tokens_ours_engine"]
    assert c["logits0_max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl"])
def test_checkpoint_pixel_budget_gives_the_processors_token_count(workdir, kind):
    folder = workdir / f"{kind}-pixels"
    rpc.build_checkpoint(kind, folder, min_pixels=4 * 28 * 28, max_pixels=224 * 224)
    c = rpc.compare(kind, folder, workdir / "8f-350x350.mp4", 8, max_new_tokens=2)
    assert c["visual_tokens"] == [256, 256] and c["tokens_equal"]


def test_the_comparison_sees_each_cause_put_back(checkpoints):
    llava = rpc.controls("llava_onevision", checkpoints / "llava_onevision", checkpoints / "8f-350x350.mp4", 8, 4)
    assert llava["clip_normalisation"]["pixel_max_abs_diff"] > 0.5
    assert llava["clip_normalisation"]["logits0_max_abs_diff"] > 1e-2
    assert not llava["hard_coded_prompt"]["prompt_ids_equal"]  # this template puts a newline after the role
    assert llava["float_resize_grey_levels_max_diff"] >= 1
    qwen = rpc.controls("qwen2_5_vl", checkpoints / "qwen2_5_vl", checkpoints / "8f-350x350.mp4", 8, 4)
    assert qwen["one_second_per_grid"]["logits0_max_abs_diff"] > 1e-2
    qwen3 = rpc.controls("qwen3_vl", checkpoints / "qwen3_vl", checkpoints / "8f-350x350.mp4", 8, 4)
    assert not qwen3["no_timing"]["prompt_ids_equal"]  # its timestamps are text in the prompt
