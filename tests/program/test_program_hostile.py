"""Hostile programs: each is rejected at compile time with a message naming its line and
construct, or stopped by the work budget at run time with a message naming the limit.

Run-time cases use the default WorkBudget except a generous wall clock, so what stops them is
the deterministic limit under test, not the clock.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.errors import BudgetExceeded, ProgramError
from edgefmp.program import WorkBudget, compile_program
from edgefmp.program import validate as validate_module


def program(body: str, prelude: str = "") -> str:
    """`body` inside execute_command (its first line is line 2 unless `prelude` adds lines)."""
    indented = "\n".join("    " + line if line else line for line in body.splitlines())
    return f"{prelude}def execute_command(image):\n{indented}\n"


# (case id, source, line the message must name, text the message must contain)
REJECTED = [
    ("import", "import os\n" + program("return 1"), 1, "import is not allowed"),
    ("from-import", "from os import system\n" + program("return 1"), 1, "import is not allowed"),
    ("import-inside", program("import subprocess\nreturn 1"), 2, "import is not allowed"),
    ("dunder-bases", program("return ().__class__.__bases__"), 2, "attribute '__class__'"),
    ("image-dict", program("return image.__dict__"), 2, "attribute '__dict__'"),
    ("private-context", program("return image._context"), 2, "attribute '_context'"),
    ("fstring-dunder", program('return f"{image.__class__}"'), 2, "attribute '__class__'"),
    ("str-format", program('return "{0.__class__}".format(image)'), 2, "attribute 'format'"),
    ("format-map", program('return "{x}".format_map({"x": image})'), 2, "attribute 'format_map'"),
    ("getattr", program('return getattr(image, "_context")'), 2, "'getattr' is not allowed"),
    ("gi-frame", program("return (x for x in []).gi_frame"), 2, "attribute 'gi_frame'"),
    ("lambda-default", program("f = lambda g=image.find: g.__self__\nreturn f()"), 2, "attribute '__self__'"),
    ("lambda-globals", program("return (lambda: 0).__globals__"), 2, "attribute '__globals__'"),
    ("undefined", program("return os.system('ls')"), 2, "name 'os' is not defined"),
    ("exec", program('exec("x = 1")'), 2, "'exec' is not allowed"),
    ("eval", program('return eval("1 + 1")'), 2, "'eval' is not allowed"),
    ("open", program('return open("/etc/passwd").read()'), 2, "'open' is not allowed"),
    ("compile", program('return compile("1", "f", "eval")'), 2, "'compile' is not allowed"),
    ("globals", program("return globals()"), 2, "'globals' is not allowed"),
    ("vars", program("return vars(image)"), 2, "'vars' is not allowed"),
    ("type", program("return type(image)"), 2, "'type' is not allowed"),
    ("dunder-import", program('return __import__("os")'), 2, "name '__import__' is not allowed"),
    ("builtins", program("return __builtins__"), 2, "name '__builtins__' is not allowed"),
    ("class", "class Evil:\n    pass\n" + program("return 1"), 1, "a class definition is not allowed"),
    ("with", program("with image as f:\n    pass\nreturn 1"), 2, "a with statement is not allowed"),
    ("try", program("try:\n    x = 1\nexcept Exception:\n    pass\nreturn 1"), 2, "try/except is not allowed"),
    ("raise", program("raise ValueError('x')"), 2, "raise is not allowed"),
    ("async", "async def execute_command(image):\n    return 1\n", 1, "async def is not allowed"),
    ("await", program("return await image"), 2, "await is not allowed"),
    ("yield", program("yield 1"), 2, "yield is not allowed"),
    ("yield-from", program("yield from [1]"), 2, "yield from is not allowed"),
    ("global", program("global counter\nreturn 1"), 2, "global is not allowed"),
    ("nonlocal", program("def f():\n    nonlocal image\nreturn 1"), 3, "nonlocal is not allowed"),
    ("del-attribute", program("del image.left\nreturn 1"), 2, "assigning or deleting attribute 'left'"),
    ("set-attribute", program("image.left = 5\nreturn 1"), 2, "assigning or deleting attribute 'left'"),
    ("starred-call", program("args = [1]\nreturn max(*args)"), 3, "starred expression"),
    ("starred-target", program("a, *b = [1, 2]\nreturn a"), 2, "starred expression"),
    ("kwargs-unpack", program('return dict(**{"a": 1})'), 2, "**keyword unpacking"),
    ("walrus", program("return (x := 1)"), 2, "assignment expression"),
    ("slice-assign", program("x = [1, 2]\nx[0:1] = x\nreturn x"), 3, "assigning to a slice"),
    ("bytes", program('return b"raw"'), 2, "bytes literals are not allowed"),
    ("decorator", "def deco(f):\n    return f\n\n@deco\n" + program("return 1"), 5, "decorators are not allowed"),
    ("neural-ref", program("f = image.exists\nreturn f('x')"), 2, "'exists' must be called directly"),
    ("llm-ref", program("f = llm_query\nreturn f('x')"), 2, "'llm_query' must be called directly"),
    ("rebind-dsl", program("llm_query = 3\nreturn 1"), 2, "would hide the DSL function"),
    ("top-level-code", "x = image\n" + program("return 1"), 1, "only constant values"),
    (
        "top-level-loop",
        "for i in range(3):\n    pass\n" + program("return 1"),
        1,
        "put the code inside execute_command",
    ),
    ("two-params", "def execute_command(image, other):\n    return 1\n", 1, "exactly one positional parameter"),
    ("match", program("match image:\n    case _:\n        return 1"), 2, "a match statement is not allowed"),
    ("assert", program("assert image, 'x'\nreturn 1"), 2, "assert is not allowed"),
    ("break-outside-loop", program("break\nreturn 1"), 2, "'break' outside loop"),
    # Operators carry no line of their own: the message names the line of their expression.
    ("matmul", program("x = 1\nreturn x @ 2"), 3, "the @ operator is not allowed"),
    ("matmul-augmented", program("x = 1\nx @= 2\nreturn x"), 3, "the @ operator is not allowed"),
    ("matmul-in-lambda", program("f = lambda a: (\n    a @ a)\nreturn 1"), 3, "the @ operator is not allowed"),
    ("matmul-top-level", "X = 1 @ 2\n" + program("return 1"), 1, "the @ operator is not allowed"),
    ("complex", program("return 2j"), 2, "complex literals are not allowed"),
    ("ellipsis", program("x = ...\nreturn 1"), 2, "ellipsis literals are not allowed"),
    ("dict-unpack", program("d = {}\nreturn len({**d})"), 3, "**dict unpacking"),
    ("async-comprehension", program("return len([x async for x in image])"), 2, "async comprehensions"),
]

# One program per construct that validate._REJECTED names, with the line it sits on: the table
# must cover every entry, so a construct added there gets its message's line checked here.
NAMED_REJECTIONS: dict[str, tuple[str, int]] = {
    "Import": ("x = 1\nimport os\nreturn 1", 3),
    "ImportFrom": ("x = 1\nfrom os import path\nreturn 1", 3),
    "ClassDef": ("x = 1\nclass A:\n    pass\nreturn 1", 3),
    "AsyncFunctionDef": ("x = 1\nasync def f():\n    pass\nreturn 1", 3),
    "AsyncFor": ("x = 1\nasync for y in image:\n    pass\nreturn 1", 3),
    "AsyncWith": ("x = 1\nasync with image as f:\n    pass\nreturn 1", 3),
    "Await": ("x = 1\nreturn await image", 3),
    "With": ("x = 1\nwith image as f:\n    pass\nreturn 1", 3),
    "Try": ("x = 1\ntry:\n    pass\nexcept ValueError:\n    pass\nreturn 1", 3),
    "TryStar": ("x = 1\ntry:\n    pass\nexcept* ValueError:\n    pass\nreturn 1", 3),
    "Raise": ("x = 1\nraise ValueError()\nreturn 1", 3),
    "Assert": ("x = 1\nassert x\nreturn 1", 3),
    "Global": ("x = 1\nglobal y\nreturn 1", 3),
    "Nonlocal": ("x = 1\ndef f():\n    nonlocal x\nreturn 1", 4),
    "Yield": ("x = 1\nyield x\nreturn 1", 3),
    "YieldFrom": ("x = 1\nyield from [x]\nreturn 1", 3),
    "NamedExpr": ("x = 1\nreturn (y := 2)", 3),
    "Starred": ("x = [1]\nreturn max(\n    *x)", 4),
    "Match": ("x = 1\nmatch x:\n    case _:\n        pass\nreturn 1", 3),
    "MatMult": ("x = 1\nreturn (x +\n    x @ x)", 4),
}


def test_every_named_rejection_has_a_case() -> None:
    assert set(NAMED_REJECTIONS) == set(validate_module._REJECTED)


@pytest.mark.parametrize("node", sorted(NAMED_REJECTIONS))
def test_every_named_rejection_names_its_line(node: str) -> None:
    body, line = NAMED_REJECTIONS[node]
    what, _ = validate_module._REJECTED[node]
    with pytest.raises(ProgramError) as info:
        compile_program(program(body))
    message = str(info.value)
    assert message.startswith(f"line {line}: {what} is not allowed"), message
    assert info.value.line == line


@pytest.mark.parametrize(("source", "line", "expected"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_rejected_at_compile_time(source: str, line: int, expected: str) -> None:
    with pytest.raises(ProgramError) as info:
        compile_program(source)
    message = str(info.value)
    assert message.startswith(f"line {line}: "), message
    assert expected in message, message
    assert info.value.line == line


def test_missing_entry_point_is_rejected() -> None:
    with pytest.raises(ProgramError, match="must define `def execute_command"):
        compile_program("def main(image):\n    return 1\n")


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ProgramError, match=r"^line 2: syntax error"):
        compile_program("def execute_command(image):\n    return (\n")


def test_source_size_is_bounded() -> None:
    with pytest.raises(ProgramError, match="characters"):
        compile_program(program("return 1") + "#" * 200_000)


def test_deeply_nested_source_is_a_program_error() -> None:
    with pytest.raises(ProgramError):
        compile_program(program("return " + "-" * 50_000 + "1"))


# (case id, body of execute_command, the budget field the message must name)
STOPPED = [
    ("while-true", "while True:\n    pass", "max_steps"),
    ("recursion", "def f(n):\n    return f(n + 1)\nreturn f(0)", "max_depth"),
    ("mutual-recursion", "def f(n):\n    return g(n)\ndef g(n):\n    return f(n)\nreturn f(0)", "max_depth"),
    ("lambda-recursion", "f = lambda n: f(n)\nreturn f(0)", "max_depth"),
    ("range", "return list(range(10**12))", "max_range"),
    ("power-tower", "return 10**10**10", "max_int_bits"),
    ("nine-nines", "return 9**9**9", "max_int_bits"),
    ("shift", "return 1 << 10**9", "max_int_bits"),
    ("str-repeat", "return 'a' * 10**10", "max_sequence"),
    ("list-repeat", "return [0] * 10**9", "max_sequence"),
    ("doubling", "x = [0]\nwhile True:\n    x = x + x", "max_sequence"),
    ("inplace-doubling", "x = 'ab'\nwhile True:\n    x += x", "max_sequence"),
    ("extend-self", "x = [0]\nwhile True:\n    x.extend(x)", "max_sequence"),
    ("nested-comprehension", "return len([[i * j for i in range(10**5)] for j in range(10**5)])", "max_steps"),
    ("generator-sum", "return sum(1 for _ in range(10**5) for _ in range(10**5))", "max_steps"),
    ("neural-loop", "for i in range(1000):\n    image.exists('circle')", "max_neural_calls"),
    ("aliased-repr", "a = [0] * 10**6\nb = [a] * 1000\nreturn str(b)", "max_sequence"),
    ("aliased-fstring", "a = [0] * 10**6\nb = [a] * 1000\nreturn f'{b}'", "max_sequence"),
    ("aliased-compare", "a = [0] * 10**6\nc = [0] * 10**6\nreturn [a] * 1000 == [c] * 1000", "max_sequence"),
    ("aliased-sort", "a = [0] * 10**5\nreturn sorted([a] * 1000)", "max_sequence"),
    (
        "tuple-hash",
        "t = (1,) * 1000\n" + "t = (t, t, t, t, t, t, t, t, t, t)\n" * 4 + "return len({t: 1})",
        "max_sequence",
    ),
    ("deep-nesting", "t = ()\nfor i in range(100000):\n    t = (t,)\nreturn len({t: 1})", "max_depth"),
    ("cycle", "a = []\na.append(a)\nreturn a == a", "max_depth"),
    ("replace-bomb", "s = 'a' * 10**6\nreturn s.replace('a', s)", "max_sequence"),
    ("join-bomb", "s = 'a' * 10**6\nreturn ''.join([s] * 10**5)", "max_sequence"),
    ("format-width", "return f'{1:>1000000000}'", "max_sequence"),
    ("percent-width", "return '%1000000000d' % 5", "max_sequence"),
    ("round-digits", "return round(5, -10**9)", "max_int_bits"),
    ("int-parse", "return int('f' * 100000, 16)", "max_int_bits"),
    ("copies", "a = [0] * 10**6\nys = [list(a) for i in range(1000)]\nreturn len(ys)", "max_steps"),
    ("slice-copies", "a = [0] * 10**6\nys = [a[:] for i in range(1000)]\nreturn len(ys)", "max_steps"),
    ("str-scan-loop", "s = 'a' * 10**6\nwhile True:\n    s.find('b')", "max_steps"),
    ("in-str-loop", "s = 'a' * 10**6\nwhile True:\n    x = 'b' in s", "max_steps"),
    ("any-loop", "a = [0] * 10**6\nwhile True:\n    any(a)", "max_steps"),
    ("sum-range-loop", "while True:\n    sum(range(10**5))", "max_steps"),
    ("sort-key-recursion", "def k(x):\n    return sorted([1, 2], key=k)\nreturn k(0)", "max_depth"),
]


@pytest.mark.parametrize(("body", "limit"), [c[1:] for c in STOPPED], ids=[c[0] for c in STOPPED])
def test_stopped_by_the_budget(body: str, limit: str, caller: object) -> None:
    compiled = compile_program(program(body + "\nreturn 0"))  # an endless loop still needs a return to compile
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(BudgetExceeded) as info:
        compiled.run(image, caller, WorkBudget(max_seconds=60.0))  # type: ignore[arg-type]
    message = str(info.value)
    assert limit in message, message
    assert message.startswith("line "), message
    assert info.value.line is not None and info.value.line >= 2


def test_wall_clock_budget_with_a_slow_caller(caller: object) -> None:
    """A fake clock that a 'slow' neural call advances: the next step ends the frame."""
    now = [0.0]

    class SlowCaller:
        def call(self, site_id: str, request: object) -> object:
            now[0] += 10.0
            return caller.call(site_id, request)  # type: ignore[attr-defined]

    compiled = compile_program(program("n = 0\nfor i in range(10):\n    n += image.count('circle')\nreturn n"))
    with pytest.raises(BudgetExceeded, match="max_seconds") as info:
        compiled.run(np.zeros((32, 32, 3), np.uint8), SlowCaller(), WorkBudget(max_seconds=5.0), clock=lambda: now[0])
    assert info.value.line == 3


def test_the_process_survives_and_the_program_runs_again(caller: object) -> None:
    compiled = compile_program(program("n = 0\nwhile True:\n    n += 1\nreturn n"))
    image = np.zeros((8, 8, 3), np.uint8)
    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            compiled.run(image, caller, WorkBudget(max_steps=1000))  # type: ignore[arg-type]


def test_runtime_bypass_of_call_sites_is_refused(caller: object) -> None:
    """`find` is also a str method, so the validator lets `f = image.find` through; calling it
    without its call site must still fail instead of reaching the caller under no site."""
    compiled = compile_program(program("f = image.find\nreturn f('circle')"))
    with pytest.raises(ProgramError, match="without its call site"):
        compiled.run(np.zeros((8, 8, 3), np.uint8), caller)  # type: ignore[arg-type]
    assert caller.calls == []  # type: ignore[attr-defined]
