"""Routing policies, created by name: `create("static:0")`, `create("adaptive", ...)`."""

from __future__ import annotations

import importlib
from typing import Any

from edgefmp.errors import PolicyError
from edgefmp.policies.base import BackendInfo, Decision, DecisionContext, Policy, SiteInfo

# name -> "module:factory"; imported on first use so torch-based policies cost nothing until chosen.
POLICY_FACTORIES: dict[str, str] = {
    "static": "edgefmp.policies.static:StaticPolicy",
    "random": "edgefmp.policies.random_policy:RandomPolicy",
    "cascade": "edgefmp.policies.cascade:CascadePolicy",
    "routing": "edgefmp.policies.routing:RoutingPolicy",
    "ucb": "edgefmp.policies.ucb:UCBPolicy",
    "linucb": "edgefmp.policies.linucb:LinUCBPolicy",
    "paper": "edgefmp.policies.paper:PaperPolicy",
    "adaptive": "edgefmp.policies.adaptive:AdaptivePolicy",
}


def list_policies() -> list[str]:
    return sorted(POLICY_FACTORIES)


def create(name: str, **kwargs: Any) -> Policy:
    """Create a policy from its name; `static:<i>` takes the backend index after the colon."""
    base, _, arg = name.partition(":")
    target = POLICY_FACTORIES.get(base)
    if target is None:
        raise PolicyError(f"unknown policy {name!r}; available: {', '.join(list_policies())}")
    if base == "static":
        try:
            kwargs.setdefault("index", int(arg or 0))
        except ValueError:
            raise PolicyError(f"policy {name!r}: the index after 'static:' must be an integer") from None
    elif arg:
        raise PolicyError(f"policy {name!r}: only 'static' takes an argument after ':'")
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise PolicyError(f"policy {base!r} needs a package that is not installed: {exc}") from exc
    policy: Policy = factory(**kwargs)
    return policy


__all__ = ["BackendInfo", "Decision", "DecisionContext", "Policy", "SiteInfo", "create", "list_policies"]
