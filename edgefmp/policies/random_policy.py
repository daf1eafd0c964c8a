"""Uniform random routing: the floor every learned policy must beat, and a logging policy with
known propensities for off-policy evaluation of the others."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgefmp.errors import PolicyError
from edgefmp.policies.arms import allowed_arms
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo


class RandomPolicy(Policy):
    """Each call picks one of the allowed backends uniformly; propensity is 1 / (number allowed).

    `seed` makes a run reproducible; the generator's state is part of `state_dict`, so a
    resumed run continues the same sequence.
    """

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        arms = np.flatnonzero(allowed_arms(site, context, self.name))
        index = int(arms[self._rng.integers(len(arms))])
        return Decision(index, propensity=1.0 / len(arms))

    def state_dict(self) -> dict[str, Any]:
        # PCG64's 128-bit integers go out as strings: JSON readers other than Python's lose them.
        full = self._rng.bit_generator.state
        rng = {
            "state": str(full["state"]["state"]),
            "inc": str(full["state"]["inc"]),
            "has_uint32": int(full["has_uint32"]),
            "uinteger": int(full["uinteger"]),
        }
        return {"policy": self.name, "seed": self.seed, "rng": rng}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("policy") != self.name:
            raise PolicyError(f"random: cannot load the state of policy {state.get('policy')!r}")
        self.seed = state.get("seed")
        rng = np.random.default_rng(self.seed)
        if "rng" in state:
            full = dict(rng.bit_generator.state)
            full["state"] = {"state": int(state["rng"]["state"]), "inc": int(state["rng"]["inc"])}
            full["has_uint32"] = int(state["rng"]["has_uint32"])
            full["uinteger"] = int(state["rng"]["uinteger"])
            rng.bit_generator.state = full
        self._rng = rng
