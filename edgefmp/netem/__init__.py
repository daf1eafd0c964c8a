"""Network emulation for measuring the remote tier under WAN conditions (see proxy.py)."""

from __future__ import annotations

from edgefmp.netem.conditions import NetConditions
from edgefmp.netem.proxy import ProxyStats, ShapingProxy

__all__ = ["NetConditions", "ProxyStats", "ShapingProxy"]
