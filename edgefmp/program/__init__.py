"""Programs: the DSL, the validator and the budgeted runtime.

A program is Python source that defines `def execute_command(image):` using the DSL of
`ImagePatch` (find, exists, count, verify_property, query, best_text_match, read_text, crop,
positions) and `llm_query`. `compile_program` / `load_program` validate it against an
allowlist and return a `CompiledProgram` whose `sites` are its neural call sites and whose
`run(image, caller, budget)` executes it under a `WorkBudget`. See docs/PROGRAMS.md.
"""

from __future__ import annotations

from edgefmp.program.api import NEURAL_CALLS, CallSite, NeuralCaller, WorkBudget
from edgefmp.program.compile import CompiledProgram, compile_program, load_program
from edgefmp.program.dsl import ImagePatch

__all__ = [
    "NEURAL_CALLS",
    "CallSite",
    "CompiledProgram",
    "ImagePatch",
    "NeuralCaller",
    "WorkBudget",
    "compile_program",
    "load_program",
]
