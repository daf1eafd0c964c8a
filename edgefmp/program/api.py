"""The contract between a running program and the executor.

The program package owns parsing, validation and the DSL (`ImagePatch`); the executor owns
routing and backends. They meet here: every neural DSL call becomes
`caller.call(site_id, request)`, where `site_id` names the textual call site and `request` is
one of the typed requests of edgefmp.results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edgefmp.results import Request, Result

# DSL method or free function -> the neural function it calls. `exists` and `count` are
# detections too; `simple_query` is ViperGPT's alias of `query`. `answer` asks a question of the
# whole patch at once, as one monolithic model would (the routing baseline's single call),
# through its own function so that its backends never become choices of a program's `query`.
NEURAL_CALLS: dict[str, str] = {
    "find": "detect",
    "exists": "detect",
    "count": "detect",
    "verify_property": "verify",
    "query": "vqa",
    "simple_query": "vqa",
    "answer": "answer",
    "best_text_match": "classify",
    "read_text": "ocr",
    "llm_query": "llm",
}


class NeuralCaller(Protocol):
    """What the DSL calls to get a neural result; implemented by the executor per frame."""

    def call(self, site_id: str, request: Request) -> Result: ...


@dataclass(frozen=True)
class CallSite:
    """One textual neural call in a program's source.

    `site_id` is `<method>@<line>:<col>` (for example `find@3:12`): stable for the same source,
    different for the same call written on two lines.
    """

    site_id: str
    method: str
    function: str
    line: int
    col: int
    text: str


@dataclass(frozen=True)
class WorkBudget:
    """Limits on one frame's execution; exceeding any ends the frame with BudgetExceeded."""

    max_neural_calls: int = 256
    max_steps: int = 200_000
    max_seconds: float = 5.0
    max_depth: int = 32
    max_range: int = 100_000
    max_sequence: int = 1_000_000
    max_int_bits: int = 4096
