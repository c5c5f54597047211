"""Set-up for VideoPrune (stdlib only).

* As a ComfyUI-Manager install step (no arguments): installs requirements.txt into the running
  interpreter and never touches torch.
* Standalone: ``python install.py --standalone`` also installs a known-good torch when none is
  present (CPU wheel 2.13.0), and the demo requirements. ``--dev`` adds test tools; ``--browser``
  installs Debian's chromium for the browser test; ``--flash-attn`` installs flash-attn only when
  CUDA is present.
* ``--eval`` (optional, large): lmms-eval 0.7.3 with the torch/torchvision pair it needs
  (2.14.1/0.29.1), this folder as an editable package so lmms-eval finds the ``videoprune`` model
  through its ``lmms_eval.models`` entry point, the ``videoprune_synthetic`` task registered and its
  files exported (see docs/EVAL.md).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KNOWN_GOOD_TORCH = "torch==2.13.0"
EVAL_TORCH = ("torch==2.14.1", "torchvision==0.29.1")  # lmms-eval needs torchvision; this pair matches
LMMS_EVAL = "lmms-eval==0.7.3"
LMMS_EVAL_FIXES = ("filelock<4",)  # lmms-eval 0.7.3 imports filelock._api, which filelock 4 removed


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.check_call(cmd)


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cuda_present() -> bool:
    if have("torch"):
        try:
            import torch
            return bool(torch.cuda.is_available())
        except Exception:
            return False
    return shutil.which("nvidia-smi") is not None


def install_browser() -> None:
    if shutil.which("chromium"):
        return
    if shutil.which("apt-get") is None:
        print("chromium not installed and apt-get unavailable: the browser test will be skipped", flush=True)
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.check_call(sudo + ["apt-get", "update", "-qq"], env=env)
        subprocess.check_call(sudo + ["apt-get", "install", "-y", "-qq", "chromium"], env=env)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"could not install chromium ({e}): the browser test will be skipped", flush=True)


def _version(module: str) -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version
    try:
        v = version(module)
    except PackageNotFoundError:
        return ()
    return tuple(int(p) for p in v.split("+")[0].split(".")[:3] if p.isdigit())


def install_eval() -> None:
    """lmms-eval + what registering the ``videoprune`` model and ``videoprune_synthetic`` task needs."""
    if not have("torchvision"):
        torch_v = _version("torch")
        if torch_v and torch_v > (2, 14, 1):
            pip("torchvision")  # a newer torch than our pair: let pip pick its torchvision, never downgrade
        else:
            pip(*EVAL_TORCH)
    pip(LMMS_EVAL, *LMMS_EVAL_FIXES)
    isolation = [] if _version("setuptools") < (64,) else ["--no-build-isolation"]
    pip("--no-deps", *isolation, "-e", HERE)  # the lmms_eval.models entry point (pyproject.toml)
    for step in ("export", "register"):
        cmd = [sys.executable, "-m", "videoprune_eval", step]
        print("+", " ".join(cmd), flush=True)
        subprocess.check_call(cmd, cwd=HERE)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--standalone", action="store_true", help="also install torch (when missing) and the demo")
    ap.add_argument("--dev", action="store_true", help="also install test tools")
    ap.add_argument("--browser", action="store_true", help="also install Debian chromium for the browser test")
    ap.add_argument("--flash-attn", action="store_true", help="install flash-attn (only when CUDA is present)")
    ap.add_argument("--eval", action="store_true", help="also install lmms-eval and register the videoprune "
                    "model and task (large: torch 2.14.1 + torchvision)")
    args = ap.parse_args(argv)

    if args.standalone and not have("torch"):
        pip(*(EVAL_TORCH if args.eval else (KNOWN_GOOD_TORCH,)))
    pip("-r", os.path.join(HERE, "requirements.txt"))
    if args.standalone:
        pip("-r", os.path.join(HERE, "requirements-demo.txt"))
    if args.dev:
        pip("-r", os.path.join(HERE, "requirements-dev.txt"))
    if args.browser:
        install_browser()
    if args.eval:
        install_eval()
    if args.flash_attn:
        if cuda_present():
            pip("flash-attn", "--no-build-isolation")
        else:
            print("flash-attn skipped: no CUDA device; every code path runs on SDPA", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
