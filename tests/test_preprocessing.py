"""A checkpoint's preprocessing is read from every layout transformers writes, defaults only for absent keys."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pruning_core.pixels import frames_to_pixels, resize_u8
from pruning_core.preprocessing import CLASS_DEFAULTS, OPENAI_CLIP_MEAN, read_preprocessing
from pruning_core.timing import DEFAULT_FPS, VideoTiming

QWEN_VIDEO = {"video_processor_type": "Qwen2VLVideoProcessor", "size": {"shortest_edge": 1000, "longest_edge": 50000},
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "patch_size": 14, "merge_size": 2,
              "temporal_patch_size": 2}


def _write(folder, name, data):
    (folder / name).write_text(json.dumps(data))


def test_nested_processor_config_of_transformers_5_is_read(tmp_path):
    _write(tmp_path, "processor_config.json", {"processor_class": "Qwen2VLProcessor", "video_processor": QWEN_VIDEO,
                                               "image_processor": {"image_mean": [0.1, 0.1, 0.1]}})
    pre = read_preprocessing(tmp_path, "qwen2_vl")
    assert (pre.min_pixels, pre.max_pixels) == (1000, 50000)
    assert pre.image_mean == (0.5, 0.5, 0.5) and pre.image_std == (0.25, 0.25, 0.25)
    assert pre.source == "processor_config.json:video_processor"


def test_nested_config_wins_over_video_and_legacy_files(tmp_path):
    _write(tmp_path, "processor_config.json", {"video_processor": QWEN_VIDEO})
    _write(tmp_path, "video_preprocessor_config.json", {"min_pixels": 7, "max_pixels": 9})
    _write(tmp_path, "preprocessor_config.json", {"min_pixels": 8, "max_pixels": 10})
    assert read_preprocessing(tmp_path, "qwen2_vl").max_pixels == 50000


def test_video_preprocessor_config_wins_over_the_legacy_image_file(tmp_path):
    _write(tmp_path, "processor_config.json", {"processor_class": "Qwen2VLProcessor"})  # legacy: not nested
    _write(tmp_path, "video_preprocessor_config.json", {"size": {"shortest_edge": 3136, "longest_edge": 9000}})
    _write(tmp_path, "preprocessor_config.json", {"min_pixels": 8, "max_pixels": 10})
    pre = read_preprocessing(tmp_path, "qwen2_vl")
    assert (pre.min_pixels, pre.max_pixels, pre.source) == (3136, 9000, "video_preprocessor_config.json")


def test_legacy_min_max_pixels_override_size_as_the_qwen_processor_does(tmp_path):
    _write(tmp_path, "preprocessor_config.json", {"min_pixels": 3136, "max_pixels": 12845056,
                                                  "size": {"shortest_edge": 56, "longest_edge": 99}})
    pre = read_preprocessing(tmp_path, "qwen2_vl")
    assert (pre.min_pixels, pre.max_pixels) == (3136, 12845056)
    assert {"min_pixels", "max_pixels"} <= set(pre.from_checkpoint)


def test_absent_keys_take_the_video_processor_class_defaults(tmp_path):
    _write(tmp_path, "preprocessor_config.json", {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
    pre = read_preprocessing(tmp_path, "qwen2_vl")
    d = CLASS_DEFAULTS["qwen2_vl"]
    assert pre.size == d["size"] and pre.rescale_factor == d["rescale_factor"] and pre.resample == 3
    assert pre.image_mean == (0.5, 0.5, 0.5) and set(pre.from_checkpoint) == {"image_mean", "image_std"}


def test_folder_without_processor_files_is_all_class_defaults(tmp_path):
    pre = read_preprocessing(tmp_path, "llava_onevision")
    assert pre.image_mean == OPENAI_CLIP_MEAN and pre.size == {"height": 384, "width": 384} and pre.source == ""


def test_llava_siglip_normalisation_from_the_checkpoint(tmp_path):
    _write(tmp_path, "preprocessor_config.json", {"image_processor_type": "LlavaOnevisionImageProcessor",
                                                  "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                                                  "size": {"height": 384, "width": 384}})
    pre = read_preprocessing(tmp_path, "llava_onevision", {"image_size": 384, "patch_size": 14})
    frames = np.full((1, 20, 30, 3), 255, np.uint8)
    px = frames_to_pixels(frames, pre)
    assert px.shape == (1, 3, 384, 384) and torch.allclose(px, torch.ones_like(px))


def test_model_geometry_fills_keys_the_checkpoint_does_not_set(tmp_path):
    pre = read_preprocessing(tmp_path, "qwen2_vl", {"patch_size": 4, "spatial_merge_size": 2,
                                                    "temporal_patch_size": 2})
    assert pre.patch_size == 4 and "patch_size" in pre.filled_from_model
    pre = read_preprocessing(tmp_path, "llava_onevision", {"image_size": 32, "patch_size": 4})
    assert pre.size == {"height": 32, "width": 32}


def test_cap_pixels_per_frame_bounds_the_whole_video(tmp_path):
    _write(tmp_path, "preprocessor_config.json", {"cap_pixels_per_frame": True, "max_video_tokens": 1000,
                                                  "min_pixels": 3136, "max_pixels": 10 ** 7})
    pre = read_preprocessing(tmp_path, "qwen2_vl")
    h1, w1 = pre.output_size(1000, 1000, num_frames=2)
    h8, w8 = pre.output_size(1000, 1000, num_frames=64)
    assert h8 * w8 < h1 * w1 and h8 * w8 >= 3136


def test_uint8_resize_is_exact_at_the_same_size_and_stays_uint8():
    x = torch.randint(0, 256, (3, 17, 23), dtype=torch.uint8)
    assert resize_u8(x, (17, 23)) is x
    y = resize_u8(x, (9, 40))
    assert y.dtype == torch.uint8 and y.shape == (3, 9, 40)


def test_fused_rescale_and_normalise_matches_the_formula():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    pre = read_preprocessing(None, "llava_onevision", {"image_size": 8})
    px = frames_to_pixels(frames, pre)
    ref = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - torch.tensor(pre.image_mean).view(3, 1, 1)) \
        / torch.tensor(pre.image_std).view(3, 1, 1)
    torch.testing.assert_close(px, ref, atol=1e-5, rtol=1e-5)


def test_sampled_fps_follows_video_metadata():
    assert VideoTiming.of(30.0, [0, 10, 20], 60).sampled_fps == pytest.approx(1.5)
    assert VideoTiming.of(0.0, [0, 1], 2).sampled_fps == DEFAULT_FPS  # unknown fps: transformers' 24


def test_a_checkpoint_template_is_used_and_a_broken_one_is_a_one_line_error():
    from pruning_core.errors import ModelLoadError
    from pruning_core.engine import Engine
    from tiny_models import random_video, tiny_adapter
    ad = tiny_adapter("llava")
    ad.chat_template = "{% for m in messages %}<|im_start|>user\n<video>\n{{ m['content'][1]['text'] }}{% endfor %}"
    prep = Engine(ad).prepare(random_video(1, 32), "what colour ?")
    text = ad.tokenizer.decode(prep.input_ids[0, :3])
    assert text.replace(" ", "").startswith("<|im_start|>user<video>")
    ad.chat_template = "{% for m in messages %}{{ m.nope() }}{% endfor %}"
    with pytest.raises(ModelLoadError, match="chat template"):
        Engine(ad).prepare(random_video(1, 32), "what ?")
    ad.chat_template = "{{ 'no video here' }}"
    with pytest.raises(ModelLoadError, match="placeholder"):
        Engine(ad).prepare(random_video(1, 32), "what ?")
