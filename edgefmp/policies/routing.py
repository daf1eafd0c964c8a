"""Per-input model routing with no program: the paper's "LLM routing" baseline.

The task is not decomposed: each frame gets one monolithic VQA call (the question asked of the
whole image), and a contextual bandit picks which model answers it, from features of the frame
alone. The bench runs it on the one-call program of `routing_program(question)`:

    def execute_command(image):
        return image.answer("<question>")

`answer` is a catalog function of its own, not `vqa`: its backends are whole-frame question
answerers of several sizes (on the zoo: the OpenCV tier, then the shape detectors s..xl, each
answering from its own detections with the shared shapes logic of
`edgefmp/backends/scene_questions.py`), while `vqa`'s backends describe one crop a program
already found. Routing over `vqa` would give the bandit one model that can answer a whole-frame
question (the OpenCV tier) and four crop classifiers that cannot; adding the whole-frame
answerers to `vqa` instead would make them choices at every `query` call site of every program.

Cost term. The bandit regresses only the task reward; each backend's measured cost is a
separate estimate, and `cost_weight x cost` is subtracted from the score at every selection.
A router that instead learns a score with the cost already inside (and then normalises or
retrains it) lets the retraining absorb the cost as a per-backend constant, so after the first
retraining the choice no longer depends on the weight; here no update touches the cost term,
and `tests/policies/test_baselines.py` checks that the weight still decides after training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgefmp.cost.model import CostModel
from edgefmp.errors import PolicyError
from edgefmp.policies.base import Decision, DecisionContext, SiteInfo
from edgefmp.policies.context import FRAME_FEATURES, frame_features
from edgefmp.policies.linucb import Featurizer, LinUCBPolicy

log = logging.getLogger(__name__)

ROUTING_FEATURES: tuple[str, ...] = ("bias", *FRAME_FEATURES)

ROUTING_FUNCTION = "answer"  # the catalog function the one-call program calls
# DSL method per catalog function the one-call program may call
_METHODS = {"answer": "answer", "vqa": "query"}
_PROGRAM = """def execute_command(image):
    return image.{method}({question!r})
"""


def routing_program(question: str, function: str = ROUTING_FUNCTION) -> str:
    """The one-call program the routing baseline runs: ask `question` of the whole frame, through
    the catalog's `answer` function (its backends: monolithic whole-frame answerers).

    `function="vqa"` is for catalogs without `answer` whose `vqa` backends are themselves
    whole-image models (VLMs); on the zoo, `vqa`'s backends describe crops (see above).
    """
    if not question.strip():
        raise PolicyError("routing: the question of the one-call program is empty")
    if function not in _METHODS:
        raise PolicyError(
            f"routing: cannot ask a question through function {function!r}; use one of: {', '.join(_METHODS)}"
        )
    return _PROGRAM.format(method=_METHODS[function], question=question.strip())


def routing_function(functions: Sequence[str]) -> str:
    """The function the one-call program should use with a catalog serving `functions`: `answer`
    when it is there, else `vqa` (logged: its backends must answer about whole frames)."""
    if ROUTING_FUNCTION in functions or "vqa" not in functions:
        return ROUTING_FUNCTION
    log.warning(
        "routing: the catalog has no %r function (whole-frame question answerers); routing over its "
        "'vqa' backends, which must then answer questions about whole frames",
        ROUTING_FUNCTION,
    )
    return "vqa"


class RoutingPolicy(LinUCBPolicy):
    """LinUCB over the backends of the program's single call site, on frame features.

    Features: a bias and `context.frame_features` (brightness, contrast, sharpness, noise,
    motion, resolution), nothing about a program since there is none. A second distinct call
    site is an error: programs with several calls want `linucb`, `paper` or `adaptive`.
    """

    name = "routing"

    def __init__(
        self,
        alpha: float = 1.0,
        ridge: float = 1.0,
        cost_weight: float = 1e-3,
        cost_model: CostModel | None = None,
        features: Featurizer | None = None,
    ) -> None:
        super().__init__(alpha, ridge, cost_weight, cost_model, features)
        self._site_id: str | None = None

    def featurize(self, site: SiteInfo, context: DecisionContext) -> np.ndarray:
        if self._features is not None:
            return np.asarray(self._features(site, context), dtype=np.float64)
        self._memory.prepare(context)
        x = np.empty(len(ROUTING_FEATURES))
        x[0] = 1.0
        x[1:] = frame_features(context.frame, context.cache)
        self._memory.remember(context)
        return x

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        if self._site_id is None:
            self._site_id = site.site_id
        elif site.site_id != self._site_id:
            raise PolicyError(
                f"routing: routes one monolithic call per frame, but the program has call sites "
                f"{self._site_id!r} and {site.site_id!r}; use 'linucb', 'paper' or 'adaptive' for "
                f"programs with several calls, or run routing_program(question)"
            )
        return super().choose(site, context)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._site_id = next(iter(self._sites), None)
