"""Static policies: the same backend for every call of a site (the paper's static baselines)."""

from __future__ import annotations

from typing import Any

from edgefmp.errors import PolicyError
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo, first_available


class StaticPolicy(Policy):
    """Always backend `index` (negative counts from the end: -1 is the largest), or per site
    from `per_site`; falls to the nearest available backend when that one is unavailable."""

    def __init__(self, index: int = 0, per_site: dict[str, int] | None = None) -> None:
        self.index = index
        self.per_site = dict(per_site or {})
        self.name = f"static:{index}" if not self.per_site else "static:per-site"

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        n = len(site.backends)
        want = self.per_site.get(site.site_id, self.index)
        if not -n <= want < n:
            raise PolicyError(
                f"{self.name}: site {site.site_id} has {n} backends (0..{n - 1}); index {want} does not exist"
            )
        return Decision(first_available(context.available, want % n))

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.name, "index": self.index, "per_site": self.per_site}
