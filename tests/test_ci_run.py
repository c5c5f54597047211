"""`.ci/run` tells the truth: a failed install fails it, and its last runner line is the default suite.

The script runs against a stand-in ``python`` on PATH that records its calls, so the tests check
the script's control flow in a second, without installing anything.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FAKE_PYTHON = r"""#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$*" in
  *install.py*) exit "${INSTALL_RC:-0}" ;;
  *--collect-only*) [ -n "${SLOW_TESTS:-}" ] && echo "tests/test_x.py::test_slow"; exit 0 ;;
  *"-m slow"*) echo "1 passed, 9 deselected in 0.1s"; exit 0 ;;
  *pytest*) echo "9 passed, 1 deselected in 0.2s"; exit "${PYTEST_RC:-0}" ;;
esac
"""


@pytest.fixture
def ci(tmp_path):
    repo = tmp_path / "ComfyUI-VideoPrune"
    (repo / ".ci" / "extra").mkdir(parents=True)
    shutil.copy2(REPO / ".ci" / "run", repo / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls.log"

    def run(**env):
        full = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", CALLS=str(calls), CI="true", **env)
        out = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True,
                             env=full, timeout=60)
        lines = calls.read_text().splitlines() if calls.exists() else []
        return out, lines

    run.repo = repo
    return run


def test_a_failing_install_fails_the_run_before_any_test(ci):
    out, calls = ci(INSTALL_RC="1")
    assert out.returncode != 0
    assert not any("pytest" in c for c in calls)


def test_the_last_output_line_is_the_default_suite(ci):
    out, calls = ci()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "9 passed, 1 deselected in 0.2s"
    assert calls[-1] == '-m pytest -q -m not slow'


def test_no_slow_pass_when_no_test_is_marked_slow(ci):
    out, calls = ci()
    assert not any(c == "-m pytest -q -m slow" for c in calls)


def test_slow_tests_run_before_the_default_suite(ci):
    out, calls = ci(SLOW_TESTS="1")
    assert out.returncode == 0, out.stderr
    runs = [c for c in calls if "pytest" in c and "--collect-only" not in c]
    assert runs == ["-m pytest -q -m slow", "-m pytest -q -m not slow"]
    assert out.stdout.strip().splitlines()[-1].startswith("9 passed")


def test_a_failing_default_suite_fails_the_run(ci):
    out, _ = ci(PYTEST_RC="1")
    assert out.returncode == 1


def test_a_failing_extra_pass_fails_the_run_after_the_default_suite(ci):
    (ci.repo / ".ci" / "extra" / "broken.sh").write_text("exit 3\n")
    out, calls = ci()
    assert out.returncode == 1
    assert calls[-1] == '-m pytest -q -m not slow'
