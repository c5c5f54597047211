"""tools/check_comfyui.py: its log reader, object_info checks and invalid prompts (no ComfyUI needed)."""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

from nodes.pack import NODE_CLASS_MAPPINGS
from nodes.validate import validate_prompt

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_comfyui", REPO / "tools" / "check_comfyui.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

LOG_OK = """Traceback (most recent call last):
  File "/comfy/nodes.py", line 2155, in load_custom_node
    import torchaudio
ModuleNotFoundError: No module named 'torchaudio'

Import times for custom nodes:
   0.0 seconds: /comfy/custom_nodes/websocket_image_save.py
   0.2 seconds: /comfy/custom_nodes/ComfyUI-VideoPrune

IMPORT FAILED: nodes_audio.py
Starting server
"""

LOG_FAILED = """Traceback (most recent call last):
  File "/comfy/custom_nodes/ComfyUI-VideoPrune/__init__.py", line 16, in <module>
    from .nodes.pack import NODE_CLASS_MAPPINGS
ImportError: attempted relative import with no known parent package

Cannot import /comfy/custom_nodes/ComfyUI-VideoPrune module for custom nodes: attempted relative import
Import times for custom nodes:
   0.1 seconds (IMPORT FAILED): /comfy/custom_nodes/ComfyUI-VideoPrune
"""


def object_info() -> dict:
    return {name: {"input": cls.INPUT_TYPES()} for name, cls in NODE_CLASS_MAPPINGS.items()}


def test_log_reader_finds_the_import_line_and_ignores_other_modules_failures():
    problems = check.Problems()
    out = check.read_log(LOG_OK, problems)
    assert out["import_line"] == "0.2 seconds: /comfy/custom_nodes/ComfyUI-VideoPrune"
    assert out["pack_tracebacks"] == 0 and out["other_import_failures"] == ["nodes_audio.py"]
    assert problems == []


def test_log_reader_reports_a_failed_import_of_the_pack_with_its_exception():
    problems = check.Problems()
    out = check.read_log(LOG_FAILED, problems)
    assert out["pack_tracebacks"] == 1 and len(out["import_failed"]) == 2
    assert any("attempted relative import" in p for p in problems)


def test_log_reader_complains_when_the_pack_was_never_loaded():
    problems = check.Problems()
    check.read_log("Starting server\n", problems)
    assert problems and "no import-time line" in problems[0]


def test_input_check_flags_a_missing_tooltip_and_a_default_outside_its_range():
    info = {"input": {"required": {"k": ("INT", {"default": 9, "min": 0, "max": 4, "step": 1, "tooltip": "t"}),
                                   "s": ("STRING", {"default": ""})}}}
    problems = check.Problems()
    assert check.check_inputs("X", info, problems) == 2
    assert len(problems) == 2 and "X.k" in problems[0] and "X.s: no tooltip" in problems[1]


def test_every_pack_input_passes_the_object_info_checks():
    problems = check.Problems()
    for name, info in object_info().items():
        check.check_inputs(name, info, problems)
    assert problems == []


def test_overlap_finder_counts_the_title_bar():
    a = {"id": 1, "pos": [0, 40], "size": [100, 100]}
    below = {"id": 2, "pos": [0, 160], "size": [100, 100]}  # its title bar (130..160) reaches into a
    apart = {"id": 3, "pos": [0, 200], "size": [100, 100]}
    assert check.overlaps([a, below]) == [[1, 2]]
    assert check.overlaps([a, apart]) == []


@pytest.mark.parametrize("case", check.invalid_cases("builtin", object_info()), ids=lambda c: c[0])
def test_each_invalid_prompt_fails_on_exactly_the_input_it_breaks(case):
    _, prompt, node, typ, inp = case
    v = validate_prompt(copy.deepcopy(prompt), NODE_CLASS_MAPPINGS)
    errors = v.node_errors[node]["errors"]
    assert set(v.node_errors) == {node}
    assert [(e["type"], e["extra_info"].get("input_name")) for e in errors] == [(typ, inp)]


def test_the_invalid_prompts_are_valid_once_repaired():
    prompt = check._small_graph("builtin")
    assert validate_prompt(prompt, NODE_CLASS_MAPPINGS).ok
