"""The pack imports from a checkout whose folder name is not a Python identifier.

People clone into ``ComfyUI-VideoPrune`` or ``videoprune-main``; ComfyUI imports such a folder
under its own name, and pytest imports a rootdir ``__init__.py`` as a plain, package-less file.
Both must work, in a fresh interpreter each, from a copy of the pack under a hyphenated name.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACK_PARTS = ["__init__.py", "pyproject.toml", "nodes", "pruning_core", "web"]


@pytest.fixture(scope="module")
def hyphenated_clone(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clones") / "ComfyUI-VideoPrune"
    root.mkdir()
    for part in PACK_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / part)
    return root


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_comfyui_style_import_of_a_hyphenated_folder(hyphenated_clone):
    # what ComfyUI's load_custom_node does: module named after the folder, registered, executed,
    # with ComfyUI's own top-level `nodes` module already loaded
    code = f"""
import importlib.util, sys, types
comfy_nodes = types.ModuleType("nodes"); sys.modules["nodes"] = comfy_nodes
path = {str(hyphenated_clone)!r}
spec = importlib.util.spec_from_file_location("ComfyUI-VideoPrune", path + "/__init__.py")
module = importlib.util.module_from_spec(spec)
sys.modules["ComfyUI-VideoPrune"] = module
spec.loader.exec_module(module)
assert sys.modules["nodes"] is comfy_nodes
print(len(module.NODE_CLASS_MAPPINGS), module.WEB_DIRECTORY)
"""
    out = _run(code, hyphenated_clone.parent)
    assert out.returncode == 0, out.stderr
    count, web = out.stdout.split()
    assert int(count) > 10 and web == "./web"


def test_plain_file_import_of_the_root_init(hyphenated_clone):
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("__init__", {str(hyphenated_clone / "__init__.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert "nodes" not in sys.modules, "the pack's nodes must never become top-level `nodes`"
print(len(module.NODE_CLASS_MAPPINGS))
"""
    out = _run(code, hyphenated_clone.parent)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 10


def test_pytest_collects_tests_in_a_hyphenated_checkout(hyphenated_clone):
    tests = hyphenated_clone / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "test_probe.py").write_text("def test_probe():\n    import pruning_core\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=hyphenated_clone, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout
