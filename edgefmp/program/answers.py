"""What a program may answer: one str, bool, int or float, an image patch, or a flat list of
those.

Answers are compared with labels (edgefmp.policies.feedback: yes/no values for the paper's
binary reward, normalised text for open answers), scored by the benchmark and written to JSONL
traces. Scalars are what yes/no, counting and open questions answer; a patch, or a list of
patches, is what a grounding program answers ("return the red car", as ViperGPT's programs do
for referring expressions), and traces record each as its box and label. A dict, a set, None or
a nested list has no place in either and would be turned into text by a scorer and silently
count as wrong, so they are refused instead:

- statically, by the validator: `execute_command` must contain a `return`, and a `return` of a
  value that can only be a dict or set (a display or a comprehension), a generator, a lambda,
  `None` or nothing is rejected (`returns_what`);
- at run time, by the helper the rewriter wraps around every `return` of `execute_command`
  (`check_answer`): any other type, a list of more than MAX_ANSWER_ITEMS items or of anything
  but scalars and patches, a non-finite float, or running off the end of the function ends the
  frame with a ProgramError naming the line, which the runtime records as the frame's error.
"""

from __future__ import annotations

import ast
import math
from typing import cast

from edgefmp.errors import ProgramError
from edgefmp.program import allowlist as names
from edgefmp.program.dsl import ImagePatch

SCALAR_TYPES: tuple[type, ...] = (str, bool, int, float)
MAX_ANSWER_ITEMS = 100  # traces keep a list answer whole, so it is bounded here
RETURN_ADVICE = "return a str, bool or number (int or float), a patch, or a list of those"

ProgramAnswer = str | bool | int | float | ImagePatch | list[str | bool | int | float | ImagePatch]

# Expressions whose value can never be an answer, whatever the program computed.
_NEVER_ANSWERS: dict[type, str] = {
    ast.Set: "a set",
    ast.Dict: "a dict",
    ast.SetComp: "a set",
    ast.DictComp: "a dict",
    ast.GeneratorExp: "a generator",
    ast.Lambda: "a function",
}


def _type_name(value: object) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _item(value: object, line: int) -> str | bool | int | float | ImagePatch:
    """One scalar or patch of an answer, else a ProgramError naming `line`."""
    if type(value) in SCALAR_TYPES or isinstance(value, ImagePatch):
        if type(value) is float and not math.isfinite(value):
            raise ProgramError(f"line {line}: the program returned {value}: return a finite number", line)
        return cast("str | bool | int | float | ImagePatch", value)
    raise ProgramError(f"line {line}: the program returned {_type_name(value)}: {RETURN_ADVICE}", line)


def check_answer(value: object, line: int, ended: bool = False) -> ProgramAnswer:
    """`value` if it is an answer (a tuple becomes a list), else a ProgramError naming `line`.

    The rewriter calls this on every value `execute_command` returns, and with `ended=True`
    where its body runs off the end without a `return`.
    """
    if ended:
        raise ProgramError(f"line {line}: {names.ENTRY_POINT} ended without returning an answer: {RETURN_ADVICE}", line)
    if type(value) not in (list, tuple):
        return _item(value, line)
    items = cast("list[object] | tuple[object, ...]", value)
    if len(items) > MAX_ANSWER_ITEMS:
        raise ProgramError(
            f"line {line}: the program returned {len(items)} items; an answer holds at most {MAX_ANSWER_ITEMS}",
            line,
        )
    kind = _type_name(value)
    answer = []
    for item in items:
        if type(item) in (list, tuple):
            raise ProgramError(f"line {line}: the program returned {kind} of lists: {RETURN_ADVICE}", line)
        try:
            answer.append(_item(item, line))
        except ProgramError as exc:
            raise ProgramError(f"{exc} (an item of the {kind[2:]} it returned)", line) from None
    return answer


def returns_what(node: ast.Return) -> str | None:
    """What a `return` statement of `execute_command` returns when that can never be an answer
    ("a list", "None"...), else None."""
    value = node.value
    if value is None:
        return "nothing (a bare return)"
    if isinstance(value, ast.Constant) and value.value is None:
        return "None"
    return _NEVER_ANSWERS.get(type(value))


def entry_returns(entry: ast.FunctionDef) -> list[ast.Return]:
    """The `return` statements of `entry` itself, not of the functions defined inside it."""
    found: list[ast.Return] = []
    stack: list[ast.AST] = list(entry.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            found.append(node)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return sorted(found, key=lambda r: (r.lineno, r.col_offset))
