"""Cases: which policies a sweep runs, at which budgets and weights, and how each is built.

A case is one policy configuration (a family plus one budget or weight), run on every query's
stream with a fresh policy per query (each query is its own program, hence its own call
sites). Families:

- `static`: every static assignment of backends to call sites (the paper's static baselines).
  Uniform tiers (`static:0`, `static:1`, ...) are suite-level rows; mixed assignments differ
  per program and are reported per query. `largest` (always the largest backend at every
  site) is the monolithic reference and always runs.
- `routing`: per-input model routing (no program: one VQA call per frame, LinUCB choosing the
  model), swept over `weights`.
- `cascade`: cheapest first, escalate on low confidence (the project's preset).
- `paper`: the paper's router, swept over `weights`.
- `adaptive`: ours, swept over `budgets`.

Budgets are per frame: `40ms`, `2J`, `50kB`, `5%` (of always-largest's measured latency on the
same stream), `gap:1` (at most 1 point of accuracy below always-largest, minimising latency),
`none` (no target: most accurate). Weights are unitless: at weight w the largest backend's
cost is worth w units of the policy's own score (paper: w logits, so cost_weight = w / the
largest parameter count in millions; routing: w times the reward range, per the largest
backend's measured cost).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefmp.errors import ConfigError
from edgefmp.policies import create
from edgefmp.policies.base import Policy

FAMILIES: tuple[str, ...] = ("static", "routing", "cascade", "paper", "adaptive")
# From the headline 5% to half of always-largest: with the remote tier on loopback the local
# models alone cost 15-30% of it, so lower budgets can only be met by weaker models.
DEFAULT_BUDGETS: tuple[str, ...] = ("gap:1", "5%", "15%", "25%", "50%", "none")
DEFAULT_WEIGHTS: tuple[str, ...] = ("1", "10")
LARGEST = "largest"

_BUDGET = re.compile(r"^(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|J|kB|%)$")


@dataclass(frozen=True)
class Reference:
    """What the always-largest case measured on one stream; scales relative budgets and weights."""

    latency_ms: float  # mean per frame
    energy_j: float
    scalar_cost: float  # CostModel scalar of the mean frame cost
    max_params_m: float  # largest parameter count of any backend, millions
    reward_range: float  # max - min reward of one frame


@dataclass(frozen=True)
class CaseSpec:
    """One row of the sweep. `setting` is the budget or weight as the user wrote it."""

    name: str
    family: str
    setting: str = ""
    assignment: tuple[int, ...] | None = None  # static: backend index per call site, in site order
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def per_query(self) -> bool:
        """Mixed static assignments exist only for one program's call sites."""
        return self.assignment is not None


def parse_budget(text: str) -> dict[str, Any]:
    """A budget string -> `adaptive` targets (relative ones resolved later against a Reference)."""
    t = text.strip()
    if t == "none":
        return {}
    if t.startswith("gap:"):
        try:
            gap = float(t[4:])
        except ValueError:
            raise ConfigError(f"budget {text!r}: expected gap:<points>, e.g. gap:1") from None
        if not 0 <= gap <= 100:
            raise ConfigError(f"budget {text!r}: the accuracy gap must lie in [0, 100] points")
        return {"accuracy_gap": gap, "minimize": "latency_ms"}
    m = _BUDGET.match(t)
    if m is None or float(m["value"]) <= 0:
        raise ConfigError(
            f"budget {text!r}: expected <number>ms, <number>J, <number>kB, <number>% (of always-largest's "
            "latency), gap:<points> or none; e.g. 40ms, 2J, 5%, gap:1"
        )
    value, unit = float(m["value"]), m["unit"]
    if unit == "ms":
        return {"latency_ms": value}
    if unit == "J":
        return {"energy_j": value}
    if unit == "kB":
        return {"bytes": value * 1000.0}
    return {"latency_share": value / 100.0}


def parse_weight(text: str) -> float:
    try:
        w = float(text)
    except ValueError:
        raise ConfigError(f"weight {text!r}: expected a number >= 0, e.g. 1 or 0.3") from None
    if not w >= 0:
        raise ConfigError(f"weight {text!r}: expected a number >= 0")
    return w


def _split(values: list[str] | tuple[str, ...] | None, default: tuple[str, ...]) -> list[str]:
    if not values:
        return list(default)
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def plan_cases(
    policies: list[str] | None = None,
    budgets: list[str] | None = None,
    weights: list[str] | None = None,
    paper_options: dict[str, Any] | None = None,
) -> list[CaseSpec]:
    """The suite-level cases for `policies` (families, default all), validated up front."""
    families = _split(policies, FAMILIES)
    unknown = [f for f in families if f not in (*FAMILIES, LARGEST)]
    if unknown:
        raise ConfigError(f"unknown policy family {unknown[0]!r}; available: {', '.join(FAMILIES)}")
    budget_list = _split(budgets, DEFAULT_BUDGETS)
    weight_list = _split(weights, DEFAULT_WEIGHTS)
    for b in budget_list:
        parse_budget(b)
    for w in weight_list:
        parse_weight(w)
    cases = [CaseSpec(LARGEST, "static", "largest")]
    for fam in dict.fromkeys(families):
        if fam == "static":
            cases.append(CaseSpec("static:*", "static", "every assignment"))
        elif fam == "routing":
            cases += [CaseSpec(f"routing@w={w}", "routing", w) for w in weight_list]
        elif fam == "cascade":
            cases.append(CaseSpec("cascade", "cascade"))
        elif fam == "paper":
            cases += [CaseSpec(f"paper@w={w}", "paper", w, options=dict(paper_options or {})) for w in weight_list]
        elif fam == "adaptive":
            cases += [CaseSpec(f"adaptive@{b}", "adaptive", b) for b in budget_list]
    return cases


def static_assignments(n_backends: list[int], max_cases: int) -> list[tuple[int, ...]]:
    """Every assignment of a backend index to each call site (sites in program order), when
    there are at most `max_cases`; else the uniform ones plus, for each site, every backend
    of that site with the others at their largest (what a user tuning one site would try)."""
    if not n_backends:
        return []
    total = 1
    for n in n_backends:
        total *= n
    if total <= max_cases:
        return list(itertools.product(*[range(n) for n in n_backends]))
    depth = max(n_backends)
    chosen = {tuple(min(t, n - 1) for n in n_backends) for t in range(depth)}
    for s, n in enumerate(n_backends):
        for i in range(n):
            chosen.add(tuple(i if j == s else m - 1 for j, m in enumerate(n_backends)))
    return sorted(chosen)


def static_case(assignment: tuple[int, ...], uniform_depth: int | None) -> CaseSpec:
    """A case for one static assignment; uniform ones get the suite-level name `static:<i>`."""
    if uniform_depth is not None:
        return CaseSpec(f"static:{uniform_depth}", "static", str(uniform_depth))
    return CaseSpec("static:" + "-".join(map(str, assignment)), "static", "mixed", assignment=assignment)


def build_policy(case: CaseSpec, ref: Reference | None, site_ids: list[str], seed: int) -> Policy:
    """The policy of `case` for one stream; `ref` resolves relative budgets and weights."""
    if case.name == LARGEST:
        return create("static:-1")
    if case.family == "static":
        if case.assignment is not None:
            return create("static", per_site=dict(zip(site_ids, case.assignment, strict=True)))
        return create(f"static:{int(case.setting)}")
    if case.family == "cascade":
        return _cascade()
    if case.family == "routing":
        w = parse_weight(case.setting)
        if ref is None:
            raise ConfigError("routing weights need the always-largest reference of the stream")
        scale = ref.reward_range / max(ref.scalar_cost, 1e-9)
        return create("routing", cost_weight=w * scale)
    if case.family == "paper":
        w = parse_weight(case.setting)
        if ref is None:
            raise ConfigError("paper weights need the always-largest reference of the stream")
        options = {"seed": seed, **case.options}
        return create("paper", cost_weight=w / max(ref.max_params_m, 1e-9), **options)
    if case.family == "adaptive":
        targets = parse_budget(case.setting)
        share = targets.pop("latency_share", None)
        if share is not None:
            if ref is None:
                raise ConfigError("relative budgets need the always-largest reference of the stream")
            targets["latency_ms"] = share * ref.latency_ms
        return create("adaptive", targets=targets, seed=seed)
    raise ConfigError(f"unknown case family {case.family!r}")


def _cascade() -> Policy:
    """The project's cascade preset when it is there (a checkout), else cascade's defaults."""
    from edgefmp.policies.presets import default_presets_dir, load_preset

    preset = Path(default_presets_dir()) / "cascade.yaml"
    return load_preset(preset) if preset.is_file() else create("cascade")


__all__ = [
    "DEFAULT_BUDGETS",
    "DEFAULT_WEIGHTS",
    "FAMILIES",
    "LARGEST",
    "CaseSpec",
    "Reference",
    "build_policy",
    "parse_budget",
    "parse_weight",
    "plan_cases",
    "static_assignments",
    "static_case",
]
