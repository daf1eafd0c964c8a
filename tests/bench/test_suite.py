"""The suite file: validation names the file and the field; built-in suites meet the issue's shape."""

from __future__ import annotations

import re
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
    # a field named like a task kind keeps its name (pydantic's union tag is what is dropped)
    (
        _with_query(
            0, task={"kind": "relation", "a": {"color": "red"}, "b": {"shape": "circle"}, "relation": "left-of"}
        ),
        "tiny.yaml: queries[0].task.relation: Input should be 'left_of'",
    ),
    (
        _with_query(0, task={"kind": "property", "subject": {"shape": "circle"}, "property": {"color": "purple"}}),
        "tiny.yaml: queries[0].task.property.color: Input should be 'red'",
    ),
    # a typo'd key is named, with the key it probably meant (not only "question: Field required")
    (
        _with_query(0, questoin="Is it?"),
        "tiny.yaml: queries[0].questoin: unknown key 'questoin'; did you mean 'question'?",
    ),
    (
        _with_query(0, task={"kind": "exist", "object": {"color": "red"}}),
        "tiny.yaml: queries[0].task: unknown kind 'exist'",
    ),
    (
        {**tiny_suite_data(), "corruptions": [{"type": "cycle", "kind": "low_light", "period": 8, "severity": [0, 1]}]},
        "tiny.yaml: corruptions[0].severity: unknown key 'severity'; did you mean 'severities'?",
    ),
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
    path.write_text("name: x\nqueries: [\n  - id: a\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML: line 3, column 3") as err:
        load_suite(path)
    assert "<unicode string>" not in str(err.value)  # the file is named once, by its name


def test_the_bad_value_is_named(write_suite: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="queries\\[0\\].frames: .*; got 'sixty'"):
        load_suite(write_suite(_with_query(0, frames="sixty")))


def test_the_digest_is_of_the_content_not_the_comments(write_suite: Callable[..., Path]) -> None:
    path = write_suite()
    suite = load_suite(path)
    path.write_text("# a new comment\n" + path.read_text())
    again = load_suite(path)
    assert again.digest == suite.digest and again.text_digest != suite.text_digest
    assert load_suite(write_suite(frames=13)).digest != suite.digest


def test_every_stream_has_a_positive(write_suite: Callable[..., Path]) -> None:
    """`max(1, round(frames x positives))` positives, as docs/BENCH.md says: a share too small to
    round to one frame still gives one."""
    from edgefmp.bench.streams import kind_counts

    suite = load_suite(write_suite(frames=80, defaults={"frames": 80, "positives": 0.001, "lookalikes": 0.5}))
    assert kind_counts(suite.queries[0]) == (1, 40)
    assert kind_counts(load_suite(write_suite(frames=80)).queries[0]) == (20, 30)  # round(80 x 0.25)
    docs = (ROOT / "docs" / "BENCH.md").read_text()
    assert "max(1, round(frames x positives))" in docs


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
    path = ROOT / "bench" / "suites" / f"{name}.yaml"
    suite = load_suite(path)
    header = "".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    stated = re.search(r"(\d+) queries", header)
    assert stated is not None and int(stated.group(1)) == len(suite.queries), "the header comment's count"
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
