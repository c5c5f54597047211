"""``--model_args`` of the lmms-eval model type ``videoprune``, parsed and checked before any load.

lmms-eval splits ``--model_args`` on commas (outside quotes and brackets) and turns ``true``,
numbers and floats into Python values before the model sees them. A plan step with several
parameters has commas of its own, so it is written quoted (``plan='fastv:layer=2,retention=0.25'``)
or with ``;`` between its parameters (``plan=fastv:layer=2;retention=0.25``); both read the same.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from pruning_core.errors import VideoPruneError
from pruning_core.registry import format_plan, parse_plan

POSITIONS = ("original", "compact")
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2")
# keys lmms-eval itself passes to every model (from --batch_size, --device, ...)
HARNESS_KEYS = ("batch_size", "max_batch_size", "device")


@dataclass(frozen=True)
class ModelArgs:
    """Everything a ``videoprune`` run is configured by (defaults: built-in model, no pruning, 16 frames)."""

    pretrained: str = "builtin"
    plan: str = "none"                 # canonical CLI form (format_plan of the parsed plan)
    frames: int = 16
    max_fps: float | None = None
    max_side: int | None = None
    positions: str = "original"
    attn: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = 16           # used when a task's generation_kwargs do not say
    cache_mb: float = 1024.0           # bound of the vision-encoding cache; 0 disables it
    batch_size: int = 1

    @property
    def plan_list(self) -> list[dict]:
        return parse_plan(self.plan)

    def to_dict(self) -> dict:
        return asdict(self)


def _unquote(v: Any) -> Any:
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def _as_plan(v: Any) -> str:
    """A plan given as CLI text, JSON text or a list, in canonical CLI form (validated)."""
    if isinstance(v, (list, tuple)):
        plan = parse_plan(list(v))
    else:
        text = str(_unquote(v)).strip()
        if not text.startswith("["):
            text = text.replace(";", ",")
        plan = parse_plan(text)
    return format_plan(plan)


def _as_int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool):
        raise VideoPruneError(f"model_args {name} must be an integer, got {v!r}")
    try:
        f = float(_unquote(v))
    except (TypeError, ValueError):
        raise VideoPruneError(f"model_args {name} must be an integer, got {v!r}") from None
    if not f.is_integer() or f < lo:
        raise VideoPruneError(f"model_args {name} must be an integer >= {lo}, got {v!r}")
    return int(f)


def _as_float(name: str, v: Any, lo: float) -> float:
    try:
        f = float(_unquote(v))
    except (TypeError, ValueError):
        raise VideoPruneError(f"model_args {name} must be a number, got {v!r}") from None
    if not f >= lo:  # also rejects NaN
        raise VideoPruneError(f"model_args {name} must be >= {lo}, got {v!r}")
    return f


def _optional(v: Any) -> bool:
    return v is None or (isinstance(v, str) and _unquote(v).strip().lower() in ("", "none", "null"))


def _choice(name: str, v: Any, choices: tuple[str, ...]) -> str:
    s = str(_unquote(v)).strip()
    if s not in choices:
        raise VideoPruneError(f"model_args {name} must be one of {', '.join(choices)}, got {v!r}")
    return s


def parse_model_args(**given: Any) -> ModelArgs:
    """Check every key and value; unknown keys are an error (a comma inside an unquoted plan is the usual cause)."""
    known = {f.name for f in fields(ModelArgs)} | {"model", "model_path", "max_batch_size"}
    unknown = sorted(k for k in given if k not in known)
    if unknown:
        hint = ""
        if "plan" in given and any(k in ("retention", "layer", "k", "ratio") or "=" in str(given[k]) for k in unknown):
            hint = " (a plan step with several parameters must be quoted, plan='fastv:layer=2,retention=0.25', " \
                   "or use ';' between them, plan=fastv:layer=2;retention=0.25)"
        raise VideoPruneError(f"unknown model_args {', '.join(unknown)}{hint}; known: {', '.join(sorted(known - {'model', 'model_path', 'max_batch_size'}))}")
    out: dict[str, Any] = {}
    src = given.get("pretrained", given.get("model_path", given.get("model")))
    if src is not None:
        out["pretrained"] = str(_unquote(src)).strip() or "builtin"
    if "plan" in given:
        out["plan"] = _as_plan(given["plan"])
    if "frames" in given:
        out["frames"] = _as_int("frames", given["frames"], 1)
    for key in ("max_fps",):
        if key in given and not _optional(given[key]):
            out[key] = _as_float(key, given[key], 1e-6)
    if "max_side" in given and not _optional(given["max_side"]):
        out["max_side"] = _as_int("max_side", given["max_side"], 16)
    if "positions" in given:
        out["positions"] = _choice("positions", given["positions"], POSITIONS)
    if "attn" in given:
        out["attn"] = _choice("attn", given["attn"], ATTENTION)
    for key in ("device", "dtype"):
        if key in given and not _optional(given[key]):
            out[key] = str(_unquote(given[key])).strip()
    if "max_new_tokens" in given:
        out["max_new_tokens"] = _as_int("max_new_tokens", given["max_new_tokens"], 1)
    if "cache_mb" in given:
        out["cache_mb"] = _as_float("cache_mb", given["cache_mb"], 0.0)
    if "batch_size" in given and not _optional(given["batch_size"]):
        bs = str(given["batch_size"]).strip()
        if bs.startswith("auto"):
            bs = "1"
        out["batch_size"] = _as_int("batch_size", bs, 1)
        if out["batch_size"] != 1:
            raise VideoPruneError("videoprune runs batch size 1 (as the papers evaluate); "
                                  "use accelerate launch --num_processes N to go faster")
    return ModelArgs(**out)


def single_cpu_launch_note(env, world_size: int) -> str | None:
    """accelerate's ``--cpu`` launcher starts ONE process even with ``--num_processes N`` (it only
    spawns several CPU processes through an MPI hostfile); it then sets MASTER_ADDR but no WORLD_SIZE."""
    if world_size == 1 and str(env.get("ACCELERATE_USE_CPU", "")).lower() == "true" \
            and env.get("MASTER_ADDR") and not env.get("WORLD_SIZE"):
        return ("videoprune: accelerate launch --cpu started a single process (its --cpu launcher ignores "
                "--num_processes without an MPI hostfile); nothing is sharded. For N CPU processes use "
                "accelerate launch --multi_gpu --num_processes N, or torchrun --nproc_per_node N")
    return None
