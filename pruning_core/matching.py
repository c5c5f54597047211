"""FLOPs-matched comparisons: every method's own knob solved so its prefill costs a target.

Methods spend compute differently at the same nominal retention R: FastV at layer 2 keeps all
tokens in two layers, PDrop in the layers before its first drop, FrameFusion merges as it goes.
A fair table compares them at the same **equivalent retention** (DESIGN "Words"): the constant
visual share that costs the same prefill FLOPs (HieraVid eq. 12, ``flops.equivalent_retention``).
ShaRP Table 1 groups its rows this way ("grouped by comparable TFLOPs").

This module holds that matching once:

* ``reference_flops`` — FLOPs of the plan a method is matched to (FastV at K=2, ShaRP at layer 1,
  or R in every layer);
* ``solve_rising`` — the monotone bisection every FLOPs solver uses (PDrop's λ, HieraVid's stage
  ratios, the knob of any method here);
* ``Knob`` / ``knob_for`` — which parameter of a method moves its compute, and which way;
* ``match_step`` — solve that knob for a target equivalent retention, measuring each candidate
  either analytically (``analytic_measure``: preset dims, no weights) or by running the engine on
  calibration videos (``engine_measure``: exact for data-dependent methods such as FrameFusion).
  An unreachable target raises :class:`Unreachable` naming the reachable range — never a silent
  nearest value.

API notes for other modules: ``docs/methods/matching.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .errors import PlanError
from .flops import layer_flops

#: the plans a FLOPs-matched method can be compared with: the layer that prunes to R
MATCH_LAYERS = {"fastv": 2, "sharp": 1, "constant": 0}
MATCH_CHOICES = tuple(MATCH_LAYERS)


class Unreachable(PlanError):
    """A target equivalent retention that the method's knob cannot reach on this model/input."""

    def __init__(self, message: str, reachable: tuple[float, float] | None = None):
        super().__init__(message)
        self.reachable = reachable


# ---------------------------------------------------------------- FLOPs targets (pure)

def reference_flops(match: str, retention: float, n_text: int, n_visual: int, num_layers: int,
                    d: int, m: int) -> float:
    """Prefill FLOPs (HieraVid eq. 12) of the plan a matched method is compared with.

    ``fastv``: layers 0-1 see every visual token, layers 2.. keep ``retention`` (FastV K=2, the
    plan ShaRP Table 1 matches PDrop to: 25% → 11.0 TFLOPs on LLaVA-OV-7B, 32×196 tokens);
    ``sharp``: the same from layer 1 (ShaRP's default); ``constant``: ``retention`` in every layer,
    i.e. an equivalent retention of exactly ``retention``. On a model shallower than the
    reference layer the reference prunes at its last layer.
    """
    if match not in MATCH_LAYERS:
        raise PlanError(f"match must be one of {', '.join(MATCH_CHOICES)}, got {match!r}")
    layer = min(MATCH_LAYERS[match], num_layers - 1)
    kept = float(retention) * n_visual
    per_layer = [float(n_text + n_visual)] * layer + [n_text + kept] * (num_layers - layer)
    return float(sum(layer_flops(n, d, m) for n in per_layer))


def solve_rising(cost: Callable[[float], float], goal: float, lo: float, hi: float,
                 iters: int = 60) -> tuple[float, str]:
    """The largest x in [lo, hi] with cost(x) <= goal, for a cost that rises with x (bisection).

    Returns (x, status): ``"ok"``; ``"all"`` when even ``hi`` fits (x = hi); ``"none"`` when even
    ``lo`` costs more than the goal (x = lo — the caller must refuse, not use it). 60 halvings
    put x well below one token for any realistic token count.
    """
    if cost(hi) <= goal:
        return hi, "all"
    if cost(lo) > goal:
        return lo, "none"
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if cost(mid) <= goal:
            lo = mid
        else:
            hi = mid
    return lo, "ok"


# ---------------------------------------------------------------- knobs

@dataclass(frozen=True)
class Knob:
    """The parameter that moves a method's prefill compute.

    ``rising``: equivalent retention grows with the value. ``fixed``: parameters set alongside
    (PDrop is matched with ``match=constant``, StreamingLLM in its streamed prefill).
    """

    param: str
    lo: float
    hi: float
    rising: bool = True
    fixed: tuple[tuple[str, Any], ...] = ()


_KNOBS: dict[str, Knob] = {
    # PDrop solves its own λ for an equivalent retention R when matched to a constant-R plan
    "pdrop": Knob("retention", 1e-4, 1.0, fixed=(("match", "constant"),)),
    # DyCoke's prefill compute is TTM's merge share K (the KV pruning acts after the prefill)
    "dycoke": Knob("k", 0.0, 1.0, rising=False),
    "sharpv": Knob("target_retention", 1e-4, 1.0),
    # StreamingLLM changes prefill compute only with its streamed (windowed-attention) prefill
    "streamingllm": Knob("retention", 1e-4, 1.0, fixed=(("prefill", "streamed"),)),
}
_NOT_MATCHABLE = {
    "none": "the unpruned reference",
    "sharpv_memory": "withdraws tokens at a data-dependent layer; its threshold M has no FLOPs target",
}


def knob_for(method: str) -> Knob:
    """The knob of ``method``: a listed one, else its ``retention`` parameter. PlanError if none."""
    from .registry import get_method
    spec = get_method(method)
    if spec.name in _NOT_MATCHABLE:
        raise PlanError(f"{spec.name} cannot be FLOPs-matched: {_NOT_MATCHABLE[spec.name]}")
    if spec.name in _KNOBS:
        return _KNOBS[spec.name]
    names = {p.name for p in spec.params}
    if "retention" in names:
        p = spec.param("retention")
        return Knob("retention", 1e-4 if p.min_exclusive else float(p.min or 0.0), float(p.max or 1.0))
    raise PlanError(f"{spec.name} cannot be FLOPs-matched: it has no parameter that sets its compute")


def matchable_methods() -> list[str]:
    """Registered methods that have a knob, in registry order."""
    from .registry import methods
    out = []
    for name in methods():
        try:
            knob_for(name)
        except PlanError:
            continue
        out.append(name)
    return out


# ---------------------------------------------------------------- measuring a step

Measure = Callable[[list], float]
"""A plan (list of validated steps) → its equivalent retention."""


def analytic_measure(dims, n_visual: int, n_text: int = 0) -> Measure:
    """Equivalent retention of a plan from preset dims alone (``flops.flops_report``), text-free by
    default as the papers' tables count. Refuses plans whose kept counts depend on the video."""
    from .flops import flops_report

    def measure(plan: list) -> float:
        rep = flops_report(dims, n_visual, n_text, plan)
        if rep["data_dependent"]:
            raise PlanError(f"{', '.join(rep['data_dependent'])}: kept tokens depend on the video; "
                            "measure on real inputs (matching.engine_measure)")
        return float(rep["equivalent_retention"])
    return measure


WEIGHTINGS = ("flops", "linear")


def result_retention(res, weighting: str = "flops") -> float:
    """A run's equivalent retention: ``flops`` — the constant visual share with the same prefill FLOPs
    of THIS model (eq. 12, masked attention counted); ``linear`` — the mean visual share over layers,
    which is what the FLOPs weighting reduces to when n ≪ 2d + m (real 7B checkpoints at 32×196
    tokens), but not on tiny models whose attention term dominates."""
    if weighting == "flops":
        return float(res.equivalent_retention)
    if weighting == "linear":
        from .flops import equivalent_retention
        return float(equivalent_retention(res.tokens_per_layer, res.text_tokens, res.visual_tokens))
    raise PlanError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")


def engine_measure(engine, preps: Sequence[Any], weighting: str = "flops") -> Measure:
    """Mean measured equivalent retention (``result_retention``) of a plan over prepared calibration
    inputs (one-token runs)."""
    if weighting not in WEIGHTINGS:
        raise PlanError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")

    def measure(plan: list) -> float:
        vals = [result_retention(engine.run(p, plan, max_new_tokens=1), weighting) for p in preps]
        return float(sum(vals) / len(vals))
    return measure


@dataclass
class Matched:
    """A solved plan step and how close it came."""

    step: dict
    target: float
    achieved: float
    param: str
    value: float
    evaluations: int
    trace: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"step": self.step, "target": self.target, "achieved": round(self.achieved, 6),
                "param": self.param, "value": round(self.value, 6), "evaluations": self.evaluations}


def match_step(step: dict | str, target: float, measure: Measure, tol: float = 0.002,
               max_evals: int = 40, prefix: Iterable[dict] = ()) -> Matched:
    """Solve ``step``'s knob so that the plan ``prefix + [step]`` has equivalent retention ``target``.

    ``step`` is a method name or a plan step (its other parameters are kept). Bisection on the knob
    (equivalent retention is monotone in it); stops within ``tol`` or after ``max_evals``
    measurements and returns the closest value seen. Raises :class:`Unreachable` when the target
    lies outside what the knob's whole range reaches (by more than ``tol``), or when the method
    itself refuses the extreme setting.
    """
    from .registry import parse_plan
    if not 0.0 < float(target) <= 1.0:
        raise PlanError(f"target equivalent retention must be in (0, 1], got {target}")
    base = {"method": step} if isinstance(step, str) else dict(step)
    knob = knob_for(str(base["method"]))
    base.update(dict(knob.fixed))
    prefix = list(prefix)
    seen: dict[float, float] = {}
    trace: list[tuple[float, float]] = []

    def at(x: float) -> float:
        x = float(x)
        if x not in seen:
            plan = prefix + parse_plan([{**base, knob.param: x}])
            seen[x] = measure(plan)
            trace.append((x, seen[x]))
        return seen[x]

    lo, hi = knob.lo, knob.hi
    name = base["method"]
    # a direct knob (retention that already means equivalent retention, or a method that solves
    # its own schedule, like PDrop and HieraVid) lands on the first try; its refusal is the answer
    guess = min(max(float(target), lo), hi)
    v = at(guess)
    best = (abs(v - target), guess)
    if best[0] > tol:
        lo_x, hi_x = (lo, hi) if knob.rising else (hi, lo)   # lo_x: the cheapest setting
        try:
            r_min = at(lo_x)
        except PlanError as e:
            raise Unreachable(f"{name}: cannot run at its cheapest setting {knob.param}={lo_x:g} ({e})") from None
        r_max = at(hi_x)
        if target < r_min - tol or target > r_max + tol:
            raise Unreachable(f"{name}: equivalent retention {target:g} is out of reach; {knob.param} in "
                              f"[{lo:g}, {hi:g}] spans {r_min:.4f}..{r_max:.4f} here", (r_min, r_max))
        best = min((abs(v - target), x) for x, v in seen.items())
    a, b = lo, hi                         # bisection bracket in the knob's own units
    while best[0] > tol and len(seen) < max_evals and abs(b - a) > 1e-7:
        mid = 0.5 * (a + b)
        v = at(mid)
        best = min(best, (abs(v - target), mid))
        if (v < target) == knob.rising:
            a = mid
        else:
            b = mid
    x = best[1]
    final = {**base, knob.param: x}
    return Matched(parse_plan([final])[0], float(target), seen[x], knob.param, x, len(seen), trace)
