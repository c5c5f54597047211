"""Template thumbnails: ``example_workflows/<name>.jpg``, drawn from a headless run of the example.

ComfyUI's template browser shows ``<name>.jpg`` beside ``<name>.json``. The picture is what the
example itself produces: the first Overlay's kept-token frames across the top and the Report's
chart below (the chart alone when there is no Overlay), on the editor's dark background.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

SIZE = (640, 400)
BG = (32, 32, 32)
PAD = 8
MAX_FRAMES = 4


def _images(res, class_type: str, output_dir: Path) -> list[list[Path]]:
    """Per node of ``class_type`` (in node-id order), the image files its ``ui`` named."""
    out = []
    for nid in sorted(res.prompt, key=lambda k: int(k) if str(k).isdigit() else str(k)):
        if res.prompt[nid]["class_type"] == class_type and nid in res.ui:
            out.append([output_dir / im.get("subfolder", "") / im["filename"] for im in res.ui[nid].get("images", [])])
    return out


def _fit(img: Image.Image, box: tuple[int, int]) -> Image.Image:
    s = min(box[0] / img.width, box[1] / img.height)
    return img.resize((max(1, int(img.width * s)), max(1, int(img.height * s))), Image.LANCZOS)


def compose(res, output_dir: str | Path, size: tuple[int, int] = SIZE) -> Image.Image:
    """The thumbnail of one run (``nodes.runtime`` result); raises ValueError if it drew nothing."""
    output_dir = Path(output_dir)
    overlays = _images(res, "VideoPruneOverlay", output_dir)
    reports = _images(res, "VideoPruneReport", output_dir)
    frames = [Image.open(p).convert("RGB") for p in (overlays[0][:-1][:MAX_FRAMES] if overlays else [])]
    chart = Image.open(reports[0][-1]).convert("RGB") if reports and reports[0] else None
    if not frames and chart is None:
        raise ValueError("the run drew no overlay and no report chart")
    canvas = Image.new("RGB", size, BG)
    w, h = size
    top_h = (h - 3 * PAD) // 2 if frames and chart is not None else (h - 2 * PAD if frames else 0)
    if frames:
        cell = ((w - PAD * (len(frames) + 1)) // len(frames), top_h)
        for i, f in enumerate(frames):
            f = _fit(f, cell)
            canvas.paste(f, (PAD + i * (cell[0] + PAD) + (cell[0] - f.width) // 2, PAD + (top_h - f.height) // 2))
    if chart is not None:
        y0 = PAD + top_h + (PAD if frames else 0)
        box = (w - 2 * PAD, h - y0 - PAD)
        c = _fit(chart, box)
        canvas.paste(c, ((w - c.width) // 2, y0 + (box[1] - c.height) // 2))
    return canvas


def write_thumbnails(folder: str | Path, names, run, output_dir: str | Path) -> list[Path]:
    """Run each example (``run(path) -> result``) and write ``<name>.jpg`` next to its JSON."""
    folder = Path(folder)
    written = []
    for name in names:
        res = run(folder / f"{name}.json")
        path = folder / f"{name}.jpg"
        compose(res, output_dir).save(path, "JPEG", quality=85, optimize=True)
        written.append(path)
    return written
