"""A running demo for the browser and concurrency tests: one server per test session.

The server runs ``demo_app.py`` in a subprocess on a free port with a tiny model: the built-in
one when it is installed, else a tiny random LLaVA-OneVision saved to a folder (so ``--model
PATH`` is exercised too). ``expected`` computes, in this process, what a run alone gives, for
comparing with what the server answered.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
BUILTIN = REPO / "pruning_core" / "builtin" / "tiny-llava-ov" / "config.json"
START_TIMEOUT_S = 240

_SERVER: "DemoServer | None" = None
_ADAPTERS: dict[str, object] = {}


@dataclass
class DemoServer:
    url: str
    model: str
    proc: subprocess.Popen
    log: Path

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def model_for_tests(folder: Path) -> str:
    """``builtin`` when the built-in model is installed, else a saved tiny random model's folder."""
    if BUILTIN.is_file():
        return "builtin"
    from tiny_models import tiny_llava
    path = folder / "tiny-llava"
    if not (path / "config.json").is_file():
        model, tok = tiny_llava()
        model.save_pretrained(path, safe_serialization=True)
        tok.save_pretrained(path)
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder: Path, concurrency: int = 2) -> DemoServer:
    model = model_for_tests(folder)
    port = _free_port()
    log = folder / "demo_server.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(REPO / "demo_app.py"), "--model", model, "--port", str(port),
           "--cache-dir", str(folder / "cache"), "--concurrency", str(concurrency), "--device", "cpu"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=out, stderr=subprocess.STDOUT)
    server = DemoServer(f"http://127.0.0.1:{port}/", model, proc, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the demo exited with status {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url, timeout=5) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(1.0)
    server.stop()
    raise RuntimeError(f"the demo did not answer within {START_TIMEOUT_S} s:\n{server.log_tail()}")


def shared_server(request, tmp_path_factory) -> DemoServer:
    """The session's demo server, started on first use and stopped when the session ends."""
    global _SERVER
    if _SERVER is None or _SERVER.proc.poll() is not None:
        _SERVER = start(tmp_path_factory.mktemp("demo-server"))
        request.config.add_cleanup(_SERVER.stop)
    return _SERVER


def expected(model: str, sample: str, frames: int, question: str | None, plans: list[list[dict]],
             max_new_tokens: int) -> list[dict]:
    """Answer and kept tokens of each plan run alone, here, on the server's model and frames.

    One thread, like the server (OMP_NUM_THREADS=1), so the arithmetic is the same bit for bit."""
    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.synthetic import make_sample
    if model not in _ADAPTERS:
        _ADAPTERS[model] = load_model(model, device="cpu")
    s = make_sample(int(sample.split("-")[1]), frames)
    eng = Engine(_ADAPTERS[model])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prep = eng.prepare(s.frames, question or s.question.text)
        out = []
        for plan in plans:
            res = eng.run(prep, plan, max_new_tokens=max_new_tokens)
            out.append({"answer": res.answer, "kept_tokens": res.kept_tokens})
        return out
    finally:
        torch.set_num_threads(threads)
