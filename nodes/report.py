"""What a run reports: the record on the ``VIDEOPRUNE_RESULT`` wire, its summary row, the
comparison table and the latency/retention chart (numpy + OpenCV text; no plotting library)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pruning_core.layout import TokenLayout
from pruning_core.overlay import frame_retention


@dataclass
class RunRecord:
    """One Answer node's run: its label, the engine result and the frames it saw (uint8)."""

    label: str
    result: object          # pruning_core.result.Result
    frames: np.ndarray      # [T, H, W, 3] uint8, the frames the model saw
    model: str = ""
    question: str = ""
    frames_given: int = 0   # frames that came in, before Answer's uniform subsampling (0 = as many as seen)

    @property
    def layout(self) -> TokenLayout:
        return self.result.layout

    def __repr__(self) -> str:
        return f"RunRecord({self.label!r}, retention={self.result.retention:.3f})"


def summary_row(rec: RunRecord) -> dict:
    """The JSON row the frontend and the Report show for one run."""
    res = rec.result
    js = res.to_json()
    kept = res.kept_ids[-1]
    stages = [{"name": s["name"], "kind": s["kind"], "layer": s["layer"], "kept": s["kept"],
               "retention": s["retention"], "overhead_ms": s["overhead_ms"]} for s in js["stages"]]
    return {
        "label": rec.label,
        "question": rec.question,
        "answer": js["answer"],
        "frames": int(rec.frames.shape[0]),
        "frames_given": int(rec.frames_given or rec.frames.shape[0]),
        "model": rec.model or js.get("model", ""),
        "plan": js["plan_str"],
        "visual_tokens": js["visual_tokens"],
        "kept_tokens": js["kept_tokens"],
        "retention": js["retention"],
        "equivalent_retention": js["equivalent_retention"],
        "flops": js["flops"],
        "flops_unpruned": js["flops_unpruned"],
        "vision_ms": js["vision_ms"],
        "pre_llm_ms": js["pre_llm_ms"],
        "prefill_ms": js["prefill_ms"],
        "ttft_ms": js["ttft_ms"],          # vision + pre-LLM stages + prefill
        "positions": js["positions"],
        "decode_ms_per_token": js["decode_ms_per_token"],
        "new_tokens": js["new_tokens"],
        "kv_cache_mb": js["kv_cache_bytes"] / 2 ** 20,
        "stage_overhead_ms": round(sum(s["overhead_ms"] for s in stages), 3),
        "frame_retention": [round(float(r), 4) for r in frame_retention(res.layout, kept)],
        "stages": stages,
    }


COLUMNS = (("label", "run", "{}"), ("retention", "kept", "{:.1%}"), ("equivalent_retention", "eq. kept", "{:.1%}"),
           ("flops", "prefill FLOPs", "si"), ("ttft_ms", "TTFT ms", "{:.1f}"), ("vision_ms", "vision ms", "{:.1f}"),
           ("prefill_ms", "prefill ms", "{:.1f}"),
           ("decode_ms_per_token", "ms/token", "{:.1f}"), ("kv_cache_mb", "KV MB", "{:.2f}"),
           ("stage_overhead_ms", "prune ms", "{:.2f}"), ("question", "question", "{}"), ("answer", "answer", "{}"))


def table(rows: list[dict]) -> str:
    """A Markdown table of the runs, one per row, in ``COLUMNS`` order."""
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r.get(key), fmt) for key, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        text = value
    elif fmt == "si":
        text = si(float(value))
    else:
        text = fmt.format(value)
    return text.replace("|", "\\|").replace("\n", " ")


def si(x: float) -> str:
    """``40.8 T``, ``11 G``, ``10.8 M``: three significant digits and an SI prefix."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}"
    return f"{x:.3g}"


BG = (250, 250, 250)
INK = (30, 30, 30)
GRID_INK = (210, 210, 210)
RET_COLOR = (255, 170, 0)     # same family as the overlay's kept colour
EQ_COLOR = (255, 214, 140)
TTFT_COLOR = (60, 120, 220)


def chart(rows: list[dict], width: int = 720, row_height: int = 34) -> np.ndarray:
    """RGB uint8 chart: per run, retention (and equivalent retention) bars on the left and
    time-to-first-token bars on the right, with values written at the bar ends."""
    n = len(rows)
    label_w, pad, head = min(200, width // 4), 8, 30
    panel_w = (width - label_w - 3 * pad) // 2
    h = head + n * row_height + pad
    img = np.full((h, width, 3), BG, np.uint8)
    x_ret = label_w + pad
    x_t = x_ret + panel_w + pad
    _text(img, "visual tokens kept (eq. kept)", (x_ret, 20), 0.45)
    _text(img, "time to first token", (x_t, 20), 0.45)
    t_max = max([r.get("ttft_ms") or 0.0 for r in rows] + [1e-9])
    for x0 in (x_ret, x_t):
        img[head - 4:h - pad, x0 - 1] = GRID_INK
    for i, r in enumerate(rows):
        y = head + i * row_height
        _text(img, _fit(str(r.get("label", "")), label_w - pad), (pad, y + row_height // 2 + 5), 0.45)
        bar_w = panel_w - 120
        ret, eq = float(r.get("retention") or 0.0), float(r.get("equivalent_retention") or 0.0)
        _bar(img, x_ret, y + 4, int(round(min(eq, 1.0) * bar_w)), row_height // 2 + 6, EQ_COLOR)
        _bar(img, x_ret, y + 8, int(round(min(ret, 1.0) * bar_w)), row_height // 2 - 2, RET_COLOR)
        _text(img, f"{ret:.1%} (eq {eq:.1%})", (x_ret + int(min(max(ret, eq), 1.0) * bar_w) + 4,
                                                y + row_height // 2 + 5), 0.4)
        t = float(r.get("ttft_ms") or 0.0)
        tw = int(round(t / t_max * bar_w))
        _bar(img, x_t, y + 6, tw, row_height - 12, TTFT_COLOR)
        _text(img, f"{t:.0f} ms", (x_t + tw + 4, y + row_height // 2 + 5), 0.4)
    return img


def _bar(img: np.ndarray, x: int, y: int, w: int, h: int, color) -> None:
    if w > 0 and h > 0:
        img[y:y + h, x:x + w] = color


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, INK, 1, cv2.LINE_AA)


def _fit(text: str, width_px: int, scale: float = 0.45) -> str:
    """``text`` cut (ending in "...", the Hershey font has no ellipsis) to fit ``width_px``."""
    def wide(t: str) -> bool:
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width_px
    if not wide(text):
        return text
    while text and wide(text + "..."):
        text = text[:-1]
    return text + "..." if text else ""
