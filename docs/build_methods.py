"""Assemble docs/METHODS.md from the per-method sections in docs/methods/ (run after editing one)."""
from __future__ import annotations

import pathlib

HERE = pathlib.Path(__file__).resolve().parent
ORDER = ["engine", "matching", "fastv", "sharp", "sharpv", "hieravid", "pdrop", "framefusion", "dycoke", "visionzip",
         "divprune", "feather", "streamingllm", "prumerge", "prunevid", "holitom", "downsample"]
HEADER = """# Methods

How each method's equations map to code, and every choice made where a paper is ambiguous.
Generated from `docs/methods/*.md` by `python docs/build_methods.py`; edit those files.
"""


def build() -> str:
    files = {p.stem: p for p in (HERE / "methods").glob("*.md")}
    names = [n for n in ORDER if n in files] + sorted(set(files) - set(ORDER))
    return HEADER + "".join("\n" + files[n].read_text().strip() + "\n" for n in names)


if __name__ == "__main__":
    (HERE / "METHODS.md").write_text(build())
    print(HERE / "METHODS.md")
