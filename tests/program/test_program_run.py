"""Compiling and running programs: sites, language features, errors, isolation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import edgefmp.program as program_package
from edgefmp.errors import BackendUnavailable, ProgramError
from edgefmp.program import NEURAL_CALLS, compile_program, load_program

from .conftest import FakeCaller, Scene

IMAGE = np.zeros((16, 16, 3), np.uint8)


def run(source: str, caller: object = None) -> object:
    return compile_program(source).run(IMAGE, caller)  # type: ignore[arg-type]


def test_public_api() -> None:
    assert set(program_package.__all__) >= {
        "compile_program", "load_program", "CompiledProgram", "ImagePatch", "CallSite", "WorkBudget", "NEURAL_CALLS",
    }  # fmt: skip


def test_site_ids_are_stable_and_distinct_per_line() -> None:
    source = (
        "def execute_command(image):\n"
        "    a = image.exists('circle')\n"
        "    b = image.exists('circle')\n"
        "    c = image.find('a')[0].find('b')\n"
        "    return str((a, b, c))\n"
    )
    first, second = compile_program(source), compile_program(source)
    assert list(first.sites) == list(second.sites) == ["exists@2:14", "exists@3:14", "find@4:14", "find@4:27"]
    site = first.sites["exists@3:14"]
    assert (site.method, site.function, site.line, site.text) == ("exists", "detect", 3, "image.exists('circle')")
    assert {s.function for s in first.sites.values()} <= set(NEURAL_CALLS.values())


def test_literal_receivers_are_not_sites() -> None:
    compiled = compile_program("def execute_command(image):\n    return [1, 1].count(1) + 'abc'.find('b')\n")
    assert compiled.sites == {}
    assert compiled.run(IMAGE, None) == 3  # type: ignore[arg-type]


def test_non_literal_arguments(scene: Scene, caller: FakeCaller) -> None:
    source = (
        "NAMES = ['cir', 'cle']\n"
        "def execute_command(image):\n"
        "    name = ''.join(NAMES)\n"
        "    return str((len(image.find(name)), image.exists(NAMES[0] + NAMES[1])))\n"
    )
    assert compile_program(source).run(scene.image(), caller) == "(1, True)"
    assert [request.labels for _, request in caller.calls] == [("circle",), ("circle",)]  # type: ignore[union-attr]


def test_sorted_with_a_key_lambda(scene: Scene, caller: FakeCaller) -> None:
    source = (
        "def execute_command(image):\n"
        "    shapes = sorted(image.find('shape'), key=lambda p: p.horizontal_center, reverse=True)\n"
        "    return ' '.join([p.label for p in shapes])\n"
    )
    assert compile_program(source).run(scene.image(), caller) == "rectangle triangle circle"


def test_fstrings_and_formatting() -> None:
    source = (
        "def execute_command(image):\n"
        "    x = 3.14159\n"
        "    w = 6\n"
        "    return f'{x:.2f}|{x!r}|{\"a\":>{w}}|{image.width}|{[1, 2]}|{image.left}'\n"
    )
    assert run(source) == "3.14|3.14159|     a|16|[1, 2]|0"


def test_everyday_python_works() -> None:
    source = (
        "LIMIT = 3\n"
        "def helper(values, scale=2):\n"
        "    return [v * scale for v in values if v < LIMIT]\n"
        "def execute_command(image):\n"
        "    counts = {}\n"
        "    for word in 'a b a c a'.split():\n"
        "        counts[word] = counts.get(word, 0) + 1\n"
        "    counts['a'] += 10\n"
        "    pairs = sorted(counts.items(), key=lambda kv: -kv[1])\n"
        "    best, n = pairs[0]\n"
        "    total = 0\n"
        "    i = 0\n"
        "    while i < 5:\n"
        "        i += 1\n"
        "        if i == 2:\n"
        "            continue\n"
        "        total += i\n"
        "    else:\n"
        "        total *= 2\n"
        "    squares = {k: k ** 2 for k in range(4)}\n"
        "    seen = {x % 3 for x in range(10)}\n"
        "    text = 'Hello World'.lower().replace('world', 'there').title()\n"
        "    ok = isinstance(text, str) and isinstance(n, (int, float)) and not isinstance(n, list)\n"
        "    print('debug', counts)\n"
        "    return str((best, n, total, squares[3], sorted(seen), text, ok, helper([1, 2, 5]),\n"
        "            max(3, 7), min([4, 2], key=lambda v: -v), sum([1.5, 2]), abs(-2), round(2.567, 1),\n"
        "            1 < i <= 5 != 4, 'b' in counts, 5 // 2, 7 % 3, -2 ** 2, 2 ** -1, 1 << 3, list(reversed([1, 2])),\n"
        "            [e for e in enumerate('ab')], dict(zip('ab', [1, 2])), any([]), all([]), tuple([1]),\n"
        "            str(12), int('7'), float('1.5'), bool(0), 'x' * 3, [0] * 2, 'a,b'.split(',')[1:],\n"
        "            'abc'[::-1], round(1234, -2)))\n"
    )
    assert run(source) == str((
        "a", 13, 26, 9, [0, 1, 2], "Hello There", True, [2, 4], 7, 4, 3.5, 2, 2.6, True, True, 2, 1, -4, 0.5, 8,
        [2, 1], [(0, "a"), (1, "b")], {"a": 1, "b": 2}, False, True, (1,), "12", 7, 1.5, False, "xxx", [0, 0],
        ["b"], "cba", 1200,
    ))  # fmt: skip


def test_growing_a_list_in_place_is_charged_linearly() -> None:
    source = "def execute_command(image):\n    out = []\n    for i in range(50000):\n        out += [i]\n"
    source += "    return len(out)\n"
    assert run(source) == 50000


def test_chained_comparisons_short_circuit(scene: Scene, caller: FakeCaller) -> None:
    source = "def execute_command(image):\n    return 2 < 1 < image.count('circle')\n"
    assert compile_program(source).run(scene.image(), caller) is False
    assert caller.calls == []


def test_subscript_augmented_assignment_evaluates_once(scene: Scene, caller: FakeCaller) -> None:
    source = (
        "def execute_command(image):\n"
        "    counts = {'circle': 0}\n"
        "    counts[image.find('circle')[0].label] += 5\n"
        "    return str(counts)\n"
    )
    assert compile_program(source).run(scene.image(), caller) == "{'circle': 5}"
    assert len(caller.calls) == 1


def test_inplace_list_addition_keeps_aliasing() -> None:
    source = "def execute_command(image):\n    a = [1]\n    b = a\n    a += [2]\n    return str(b)\n"
    assert run(source) == "[1, 2]"


def test_nothing_survives_between_runs() -> None:
    compiled = compile_program("SEEN = []\ndef execute_command(image):\n    SEEN.append(1)\n    return len(SEEN)\n")
    assert [compiled.run(IMAGE, None) for _ in range(3)] == [1, 1, 1]  # type: ignore[arg-type]


def test_runtime_errors_name_the_line() -> None:
    with pytest.raises(ProgramError, match=r"^line 3: the program failed with ZeroDivisionError"):
        run("def execute_command(image):\n    x = 0\n    return 1 / x\n")
    with pytest.raises(ProgramError, match=r"^line 2: the program failed with IndexError"):
        run("def execute_command(image):\n    return image.find('x')[0]\n", FakeCaller(Scene([])))


def test_undefined_names_at_run_time_are_program_errors() -> None:
    """Scope is not tracked statically, so a name bound elsewhere fails only when run."""
    source = "def f():\n    y = 1\n    return y\ndef execute_command(image):\n    return y\n"
    with pytest.raises(ProgramError, match=r"^line 5: the program failed with NameError"):
        run(source)


def test_isinstance_refuses_other_types() -> None:
    with pytest.raises(ProgramError, match="isinstance"):
        run("def execute_command(image):\n    return isinstance(image, len)\n")


def test_print_is_a_logged_no_op(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="edgefmp.program.safe_builtins"):
        assert run("def execute_command(image):\n    print('hello', [1] * 3)\n    return 1\n") == 1
    assert "hello" in caplog.text


def test_caller_errors_pass_through_unchanged() -> None:
    class Down:
        def call(self, site_id: str, request: object) -> object:
            raise BackendUnavailable("every backend is down")

    with pytest.raises(BackendUnavailable, match="every backend is down"):
        run("def execute_command(image):\n    return image.exists('x')\n", Down())


def test_load_program_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.py"
    with pytest.raises(ProgramError, match="missing.py: cannot read the program"):
        load_program(missing)
    bad = tmp_path / "bad.py"
    bad.write_text("def execute_command(image):\n    import os\n")
    with pytest.raises(ProgramError, match=r"bad.py: line 2: import is not allowed") as info:
        load_program(bad)
    assert info.value.line == 2
    good = tmp_path / "good.py"
    good.write_text("def execute_command(image: ImagePatch) -> str:\n    x: int = 1\n    return str(x)\n")
    compiled = load_program(good)
    assert compiled.filename == str(good)
    assert compiled.run(IMAGE, None) == "1"  # type: ignore[arg-type]


def test_annotations_are_dropped_without_being_evaluated() -> None:
    """ViperGPT-style type hints name ImagePatch; annotations never run, whatever they hold."""
    source = (
        "def execute_command(image: open('/etc/passwd')) -> ImagePatch:\n"
        "    x: eval('1') = 2\n"
        "    y: int\n"
        "    return x\n"
    )
    assert run(source) == 2
