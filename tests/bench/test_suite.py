"""The suite file: validation names the file and the field; built-in suites meet the issue's shape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgefmp.bench.suite import load_suite
from edgefmp.errors import ConfigError
from edgefmp.program import load_program
from tests.bench.conftest import ROOT, tiny_suite_data


def _with_query(i: int, **changes: object) -> dict[str, object]:
    data = tiny_suite_data()
    data["queries"][i] = {**data["queries"][i], **changes}  # type: ignore[index]
    return data


BAD = [
    (_with_query(1, program="nowhere.py"), "tiny.yaml: queries[1].program: no file 'nowhere.py'"),
    ({**tiny_suite_data(), "images": {"split": "train"}}, "tiny.yaml: images.split: the train split is what the zoo"),
    (_with_query(0, task={"kind": "exists", "object": {}}), "tiny.yaml: queries[0].task.object: give a color"),
    (_with_query(0, task={"kind": "exists", "object": {"color": "pink"}}), "tiny.yaml: queries[0].task.object.color"),
    (_with_query(0, answer="open"), "tiny.yaml: queries[0]: task 'exists' has no open answer"),
    (_with_query(1, id="red-circle"), "tiny.yaml: queries[1].id: 'red-circle' is used twice"),
    (_with_query(0, positives=1.5), "tiny.yaml: queries[0].positives"),
    (_with_query(0, task={"kind": "hover"}), "tiny.yaml: queries[0].task"),
    (
        {**tiny_suite_data(), "corruptions": [{"type": "segment", "kind": "fog"}]},
        "tiny.yaml: corruptions[0].kind: unknown corruption 'fog'",
    ),
    ({**tiny_suite_data(), "scene": {"objects": [0, 3]}}, "tiny.yaml: scene"),
    ({**tiny_suite_data(), "surprise": 1}, "tiny.yaml: surprise"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_errors_name_the_file_and_the_field(
    write_suite: Callable[..., Path], data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_suite(write_suite(data))
    assert str(err.value).startswith(message), str(err.value)


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("queries: [\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_suite(path)


def test_defaults_and_relative_programs(write_suite: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text("def execute_command(image):\n    return 'no'\n")
    suite = load_suite(write_suite(_with_query(0, program="p.py")))
    q = suite.queries[0]
    assert q.program == (tmp_path / "p.py").resolve()
    assert (q.frames, q.positives, q.lookalikes, q.answer) == (12, 0.25, 0.5, "binary")
    assert suite.metric == "accuracy"  # one open query
    assert suite.stream_seed(q) != suite.stream_seed(suite.queries[1])


@pytest.mark.parametrize("name", ["binary", "open"])
def test_builtin_suites_have_the_issue_shape(name: str) -> None:
    suite = load_suite(ROOT / "bench" / "suites" / f"{name}.yaml")
    assert len(suite.queries) >= 20
    assert all(q.frames >= 300 for q in suite.queries)
    assert suite.spec.images.split == "test"
    if name == "binary":
        assert suite.metric == "f1"
        assert all(q.answer == "binary" and 0.05 <= q.positives <= 0.10 for q in suite.queries)
        assert {q.task.kind for q in suite.queries} >= {"exists", "property", "relation", "count"}
    else:
        assert suite.metric == "accuracy"
        assert all(q.answer == "open" and q.lookalikes > 0 for q in suite.queries)
    for q in suite.queries:
        assert load_program(q.program).sites, q.id  # every program compiles and calls a model
