"""Load the pack the way ComfyUI does and hold every node class to ComfyUI's classic (V1) rules."""
from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
OUTPUT_NODES = {"VideoPruneAnswer", "VideoPruneOverlay", "VideoPruneReport"}


def _comfy_module_name(path: Path) -> str:
    # ComfyUI's load_custom_node names the module after the pack's path, dots mangled
    return str(path).replace(".", "_x_")


@pytest.fixture(scope="module")
def pack():
    """The pack imported as ComfyUI imports it, with ComfyUI's own top-level ``nodes`` already loaded."""
    saved = {k: v for k, v in sys.modules.items() if k == "nodes" or k.startswith("nodes.")}
    for k in saved:
        del sys.modules[k]
    comfy_nodes = types.ModuleType("nodes")
    comfy_nodes.NODE_CLASS_MAPPINGS = {"KSampler": object}
    sys.modules["nodes"] = comfy_nodes
    name = _comfy_module_name(REPO)
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py",
                                                      submodule_search_locations=[str(REPO)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        yield types.SimpleNamespace(module=module, name=name, comfy_nodes=comfy_nodes,
                                    nodes_after=sys.modules.get("nodes"))
    finally:
        for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[k]
        sys.modules.pop("nodes", None)
        sys.modules.update(saved)


def classes(pack):
    return pack.module.NODE_CLASS_MAPPINGS


def test_loading_does_not_shadow_comfyuis_nodes_module(pack):
    assert pack.nodes_after is pack.comfy_nodes
    assert pack.comfy_nodes.NODE_CLASS_MAPPINGS == {"KSampler": object}


def test_node_classes_come_from_the_packs_own_nodes_package(pack):
    for cls in classes(pack).values():
        assert cls.__module__.startswith(pack.name + ".nodes"), cls.__module__


def test_exports_the_three_names(pack):
    assert isinstance(pack.module.NODE_CLASS_MAPPINGS, dict) and pack.module.NODE_CLASS_MAPPINGS
    assert set(pack.module.NODE_DISPLAY_NAME_MAPPINGS) <= set(pack.module.NODE_CLASS_MAPPINGS)
    web = (REPO / pack.module.WEB_DIRECTORY).resolve()
    assert web.is_dir() and list(web.glob("*.js"))


def test_loading_needs_neither_comfyui_nor_cuda(pack):
    assert "comfy" not in sys.modules
    assert not torch.cuda.is_initialized()


def test_node_ids_are_prefixed_and_stable(pack):
    ids = set(classes(pack))
    assert all(i.startswith("VideoPrune") for i in ids)
    assert {"VideoPruneLoadModel", "VideoPruneLoadVideo", "VideoPruneFastV"} | OUTPUT_NODES <= ids


def test_output_nodes_are_present(pack):
    outs = {k for k, c in classes(pack).items() if getattr(c, "OUTPUT_NODE", False) is True}
    assert outs == OUTPUT_NODES


def _check_widget(cid: str, name: str, typ, opts: dict) -> None:
    where = f"{cid}.{name}"
    if isinstance(typ, list):
        assert typ and all(isinstance(c, str) for c in typ), where
        assert opts.get("default", typ[0]) in typ, where
        return
    if typ in ("INT", "FLOAT"):
        lo, hi, default = opts.get("min"), opts.get("max"), opts.get("default")
        assert lo is not None and hi is not None and lo <= hi, where
        assert default is not None and lo <= default <= hi, where
        assert opts.get("step", 1) > 0, where
        if typ == "INT":
            assert all(isinstance(opts[k], int) and not isinstance(opts[k], bool) for k in ("min", "max", "default")), where
        else:
            assert all(math.isfinite(float(opts[k])) for k in ("min", "max", "default")), where
    elif typ == "BOOLEAN":
        assert isinstance(opts.get("default"), bool), where
    elif typ == "STRING":
        assert isinstance(opts.get("default", ""), str), where


def test_every_class_follows_the_v1_rules(pack):
    for cid, cls in classes(pack).items():
        decl = cls.INPUT_TYPES()
        assert isinstance(decl, dict) and isinstance(decl.get("required"), dict), cid
        assert set(decl) <= {"required", "optional", "hidden"}, cid
        for section in ("required", "optional"):
            for name, spec in (decl.get(section) or {}).items():
                assert isinstance(spec, tuple) and 1 <= len(spec) <= 2, f"{cid}.{name}"
                typ = spec[0]
                assert isinstance(typ, (str, list)), f"{cid}.{name}"
                opts = spec[1] if len(spec) == 2 else {}
                assert isinstance(opts, dict), f"{cid}.{name}"
                assert isinstance(opts.get("tooltip"), str) and opts["tooltip"].strip(), f"{cid}.{name} has no tooltip"
                if isinstance(typ, list) or typ in WIDGET_TYPES:
                    _check_widget(cid, name, typ, opts)
        assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES), cid
        for attr in ("RETURN_NAMES", "OUTPUT_TOOLTIPS"):
            if hasattr(cls, attr):
                assert isinstance(getattr(cls, attr), tuple) and len(getattr(cls, attr)) == len(cls.RETURN_TYPES), cid
        assert isinstance(cls.FUNCTION, str) and callable(getattr(cls, cls.FUNCTION, None)), cid
        assert isinstance(cls.CATEGORY, str) and cls.CATEGORY.startswith("VideoPrune/"), cid
        assert isinstance(cls.DESCRIPTION, str) and cls.DESCRIPTION.strip(), cid
        cls()  # ComfyUI instantiates with no arguments


def test_comfyui_folders_feed_the_loader_choices(pack, tmp_path, monkeypatch):
    (tmp_path / "LLM" / "my-qwen").mkdir(parents=True)
    (tmp_path / "LLM" / "my-qwen" / "config.json").write_text("{}")
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "clip.mp4").write_bytes(b"x")
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path)
    fp.get_folder_paths = lambda kind: [str(tmp_path / "LLM")] if kind == "LLM" else []
    fp.get_input_directory = lambda: str(tmp_path / "input")
    fp.get_temp_directory = lambda: str(tmp_path / "temp")
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    c = classes(pack)
    assert "my-qwen" in c["VideoPruneLoadModel"].INPUT_TYPES()["required"]["model"][0]
    assert "clip.mp4" in c["VideoPruneLoadVideo"].INPUT_TYPES()["required"]["video"][0]


def test_inside_comfyui_answer_uses_its_progress_bar_and_interruption(pack, tiny_llava, monkeypatch):
    calls = {"bar": [], "checks": 0}

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            calls["bar"].append((value, total))

    class InterruptProcessingException(Exception):
        pass

    def check():
        calls["checks"] += 1
        if calls["checks"] > 2:
            raise InterruptProcessingException()

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")
    mm.throw_exception_if_processing_interrupted = check
    for k, v in (("comfy", comfy), ("comfy.utils", utils), ("comfy.model_management", mm)):
        monkeypatch.setitem(sys.modules, k, v)
    models = sys.modules[pack.name + ".nodes.models"]
    model = models.LoadedModel(tiny_llava.adapter, "tiny")
    node = classes(pack)["VideoPruneAnswer"]()
    frames = torch.from_numpy(tiny_llava.frames).float() / 255.0
    with pytest.raises(InterruptProcessingException):
        node.answer(model, frames, "what colour is the circle ?", 4)
    # one bar from the first frame: 4 frames converted, hashed, resized, encoded, prepare, then layers,
    # 4 tokens; ComfyUI's interruption (raised by its third check) stops it between frames, before encoding
    t = tiny_llava.frames.shape[0]
    assert calls["bar"][0] == (1, 4 * t + 1 + tiny_llava.adapter.info.num_layers + 4)
    assert [v for v, _ in calls["bar"]] == [1, 2, 3]


def _fake_comfy_bar(monkeypatch) -> list:
    """ComfyUI's ``comfy.utils.ProgressBar`` as a recorder of (value, total) updates."""
    ticks: list = []

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            ticks.append((value, total))

    comfy, utils = types.ModuleType("comfy"), types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    monkeypatch.delitem(sys.modules, "comfy.model_management", raising=False)
    return ticks


def test_answer_progress_ticks_through_prepare_and_stages_and_ends_full_when_eos_comes_early(
        pack, tiny_llava, monkeypatch):
    ticks = _fake_comfy_bar(monkeypatch)
    models = sys.modules[pack.name + ".nodes.models"]
    model = models.LoadedModel(tiny_llava.adapter, "tiny")
    real_run = model.engine.run
    seen = []

    def run_stopping_early(prep, plan, max_new_tokens, progress, **kw):  # as if EOS came after 2 tokens
        seen.append([v for v, _ in ticks])
        return real_run(prep, plan, max_new_tokens=2, progress=progress, **kw)

    monkeypatch.setattr(model.engine, "run", run_stopping_early)
    node = classes(pack)["VideoPruneAnswer"]()
    frames = torch.from_numpy(tiny_llava.frames).float() / 255.0
    plan = [{"method": "uniform", "retention": 0.5}, {"method": "random", "retention": 0.25}]
    node.answer(model, frames, "what colour is the circle ?", 16, plan=plan)
    t, layers = tiny_llava.frames.shape[0], tiny_llava.adapter.info.num_layers
    total = 4 * t + 1 + len(plan) + layers + 16
    values = [v for v, _ in ticks]
    assert {tot for _, tot in ticks} == {total}
    assert values == sorted(set(values))           # moves forward only, never repeats
    assert seen[0][-1] == 4 * t + 1                # prepare done before the engine starts
    assert 4 * t + 1 + 1 in values and 4 * t + 1 + 2 in values   # one tick per pre-LLM stage
    assert values[-1] == total                     # full although only 2 of 16 tokens were decoded


def test_answer_progress_jumps_over_a_cached_encoding_instead_of_stalling(pack, tiny_llava, monkeypatch):
    ticks = _fake_comfy_bar(monkeypatch)
    models = sys.modules[pack.name + ".nodes.models"]
    model = models.LoadedModel(tiny_llava.adapter, "tiny")
    node = classes(pack)["VideoPruneAnswer"]()
    frames = torch.from_numpy(tiny_llava.frames).float() / 255.0
    node.answer(model, frames, "what colour is the circle ?", 2)
    ticks.clear()
    node.answer(model, frames, "what colour is the circle ?", 2)   # the encoding is reused
    t = tiny_llava.frames.shape[0]
    values = [v for v, _ in ticks]
    assert 4 * t + 1 in values and values[-1] == ticks[-1][1]
