"""Static policies: the same backend for every call of a site (the paper's static baselines)."""

from __future__ import annotations

import logging
from typing import Any

from edgefmp.errors import PolicyError
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo, first_available

log = logging.getLogger(__name__)


class StaticPolicy(Policy):
    """Always backend `index` (negative counts from the end: -1 is the largest), or per site
    from `per_site`; falls to the nearest available backend when that one is unavailable.

    A site with fewer backends than `index` asks for uses its largest one (logged once), so
    `static:2` means "the third size where there is one" on a catalog of uneven depth.
    """

    def __init__(self, index: int = 0, per_site: dict[str, int] | None = None) -> None:
        self.index = index
        self.per_site = dict(per_site or {})
        self.name = f"static:{index}" if not self.per_site else "static:per-site"
        self._clamped: set[str] = set()

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        n = len(site.backends)
        want = self.per_site.get(site.site_id, self.index)
        if site.site_id in self.per_site and not -n <= want < n:
            raise PolicyError(
                f"{self.name}: site {site.site_id} has {n} backends (0..{n - 1}); index {want} does not exist"
            )
        if not -n <= want < n:
            if site.site_id not in self._clamped:
                self._clamped.add(site.site_id)
                log.info("%s: site %s has %d backends; using its largest", self.name, site.site_id, n)
            want = n - 1 if want > 0 else 0
        return Decision(first_available(context.available, want % n))

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.name, "index": self.index, "per_site": self.per_site}
