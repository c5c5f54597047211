"""The frontend extension: every file parses, and its pure formatting functions pass their node tests."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.mark.parametrize("path", sorted((REPO / "web").glob("*.js")), ids=lambda p: p.name)
def test_web_file_parses(path):
    r = subprocess.run([NODE, "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_web_formatting_functions_pass_their_node_tests():
    r = subprocess.run([NODE, "--test", str(REPO / "tests" / "web")], capture_output=True, text=True, timeout=120,
                       cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_extension_only_imports_comfyui_app_and_its_own_modules():
    seen = []
    for path in (REPO / "web").glob("*.js"):
        imports = re.findall(r"^import\s[^;]*?from\s+[\"']([^\"']+)", path.read_text(), re.M)
        seen += imports
        for source in imports:  # statements may span lines
            assert source in ("../../scripts/app.js", "../../scripts/api.js") or source.startswith("./"), source
    assert "./videoprune_format.js" in seen and "../../scripts/app.js" in seen
