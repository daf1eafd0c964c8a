"""The user's commands, end to end in-process: check, doctor, demo, run + replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefmp.cli import app

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples" / "programs").glob("*.py"))
runner = CliRunner()


@pytest.mark.parametrize("program", EXAMPLES, ids=lambda p: p.name)
def test_check_accepts_the_examples_and_lists_sites(program: Path) -> None:
    result = runner.invoke(app, ["check", str(program)])
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output and "@" in result.output


def test_check_rejects_a_hostile_program_naming_line_and_construct(tmp_path: Path) -> None:
    program = tmp_path / "evil.py"
    program.write_text("def execute_command(image):\n    import os\n    return os.system('id')\n")
    result = runner.invoke(app, ["check", str(program)])
    assert result.exit_code == 2
    assert "line 2" in result.output and "import" in result.output


def test_check_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.py")])
    assert result.exit_code == 2 and "nope.py" in result.output


def test_doctor_reports_providers_and_video(tmp_path: Path) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)
    names = {c["name"] for c in checks}
    assert {"CPUExecutionProvider", "FFMPEG", "estimated"} <= names
    cpu = next(c for c in checks if c["name"] == "CPUExecutionProvider")
    assert cpu["ok"] is True
    missing = [c for c in checks if not c["ok"] and c["area"] in ("onnxruntime", "extras")]
    assert all(c["fix"] for c in missing), missing


def test_doctor_table_keeps_brackets_of_install_hints() -> None:
    """rich reads `[trt]` as markup: unescaped, `pip install 'edgefmp[trt]'` printed as 'edgefmp'."""
    checks = json.loads(runner.invoke(app, ["doctor", "--json"]).output)
    hints = {c["fix"] for c in checks if "edgefmp[" in c["fix"]}
    if not hints:
        pytest.skip("every optional extra is installed: no install hint to print")
    table = runner.invoke(app, ["doctor"], env={"COLUMNS": "400"}).output
    assert all(h in table for h in hints), (hints, table)


def test_error_messages_keep_brackets(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "missing[dir]" / "p.py")])
    assert result.exit_code == 2 and "missing[dir]" in result.output, result.output


def test_check_counts_sites_in_good_english(tmp_path: Path) -> None:
    one = tmp_path / "one.py"
    one.write_text("def execute_command(image):\n    return image.exists('circle')\n")
    result = runner.invoke(app, ["check", str(one)], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and "accepted, 1 neural call site" in result.output
    assert "1 neural call sites" not in result.output
    none = tmp_path / "none.py"
    none.write_text("def execute_command(image):\n    return 'no'\n")
    result = runner.invoke(app, ["check", str(none)])
    assert result.exit_code == 0 and "accepted, no neural call sites" in result.output
    assert "site id" not in result.output  # no empty table


def test_doctor_rapl_advice_fits_what_is_missing(tmp_path: Path) -> None:
    from edgefmp.doctor import check_meters

    (rapl,) = [c for c in check_meters(powercap_root=tmp_path / "powercap") if c.name == "rapl"]
    assert not rapl.ok and "does not exist" in rapl.detail
    assert "chmod" not in rapl.fix and "intel_rapl" in rapl.fix  # no chmod of a file that is not there
    (tmp_path / "empty").mkdir()
    (rapl,) = [c for c in check_meters(powercap_root=tmp_path / "empty") if c.name == "rapl"]
    assert not rapl.ok and "chmod" not in rapl.fix and "no RAPL zone" in rapl.fix


def _option_help(command: str, option: str) -> str:
    import typer.main

    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    (param,) = [p for p in cmd.params if p.name == option]
    return str(param.help)


def test_run_help_tells_the_catalog_default_and_the_labels_format() -> None:
    catalog = _option_help("run", "catalog")
    assert "models/catalog.yaml" in catalog and "bundled" in catalog
    labels = _option_help("run", "labels")
    for part in ("frame_id", "<video file stem>:<frame index>", "file name", "true/false", "delay"):
        assert part in labels, (part, labels)


def _scene_clip(tmp_path: Path, frames: int = 6) -> Path:
    from edgefmp.scenes.video import write_scene_video

    write_scene_video(tmp_path / "clip.mp4", n_frames=frames, seed=3)
    return tmp_path / "clip.mp4"


def test_run_exits_1_and_says_why_when_every_frame_fails(tmp_path: Path) -> None:
    from edgefmp.backends.catalog import default_catalog_path

    program = tmp_path / "broken.py"
    program.write_text("def execute_command(image):\n    items = [1]\n    return items[5]\n")
    args = ["run", str(program), "--source", str(_scene_clip(tmp_path)), "--catalog", str(default_catalog_path())]
    result = runner.invoke(app, [*args, "--quiet"], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "frame clip:0 failed: ProgramError: line 3" in result.output and "IndexError" in result.output
    assert "every one of the 6 frames failed" in result.output


def _trace_file(tmp_path: Path) -> Path:
    from edgefmp.trace import CallRecord, Cost, Trace

    path = tmp_path / "traces.jsonl"
    lines = []
    for i in range(6):
        call = CallRecord(
            site="find@2:11", function="detect", backend=f"b{i % 2}", backend_index=i % 2, args={},
            cost=Cost(latency_ms=1.0 + i % 2), policy="random", propensity=0.5,
        )  # fmt: skip
        lines.append(json.dumps(Trace(f"clip:{i}", i / 10, calls=[call], answer="yes").to_json()))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_keeps_policy_names_whole_at_80_columns(tmp_path: Path) -> None:
    traces = _trace_file(tmp_path)
    result = runner.invoke(
        app, ["replay", str(traces), "--policy", "static:0", "--policy", "static:-1"], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert "static:0 " in result.output and "static:-1" in result.output, result.output


def test_replay_explains_why_nothing_is_labelled(tmp_path: Path) -> None:
    assert "rewards stored in the traces" not in _option_help("replay", "labels")
    traces = _trace_file(tmp_path)
    result = runner.invoke(app, ["replay", str(traces), "--policy", "static:0"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "labelled is 0" in result.output and "--labels" in result.output
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"frame_id": "0", "label": "yes"}\n')
    result = runner.invoke(
        app, ["replay", str(traces), "--policy", "static:0", "--labels", str(labels)], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0 and "none of the 1 labels" in result.output and "'clip:0'" in result.output


@pytest.mark.parametrize("command", ["replay", "run"])
def test_a_video_given_as_labels_or_traces_is_a_clear_error(tmp_path: Path, command: str) -> None:
    clip = _scene_clip(tmp_path, frames=3)
    if command == "replay":
        args = ["replay", str(clip), "--policy", "static:0"]
    else:
        args = ["run", str(EXAMPLES[0]), "--source", str(clip), "--labels", str(clip), "--quiet"]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "not UTF-8 text" in result.output and "expected" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_demo_runs_and_scores_against_ground_truth(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["demo", "--frames", "12", "--workdir", str(tmp_path), "--quiet"], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    assert "answers correct:" in result.output
    traces = [json.loads(x) for x in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert sum("frame_id" in t for t in traces) == 12
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 12
    assert (tmp_path / "annotated.mp4").stat().st_size > 0
    # The demo says that the truth it scores against was also the router's online feedback.
    assert "online feedback" in result.output and "labels.jsonl" in result.output
    assert any("12 of 12 frames had a label" in note for note in summary["notes"])
    from edgefmp.runtime.session import zoo_catalog_path

    if zoo_catalog_path().is_file():  # a catalog with larger backends: the demo compares with them
        assert "against the largest backends alone (static:-1, measured on the same 12 frames)" in result.output


def test_run_then_replay_another_policy(tmp_path: Path) -> None:
    from edgefmp.demo import DEMO_PROGRAM, demo_truth
    from edgefmp.scenes.video import write_scene_video

    models = Path(__file__).resolve().parents[1] / "models"
    if not (models / "shapedet-s").is_dir():
        pytest.skip("the zoo is not built (edgefmp zoo build)")
    catalog = tmp_path / "two.yaml"
    catalog.write_text(f"""
functions:
  detect:
    - {{name: cv, kind: classical, options: {{detector: shapes}}}}
    - {{name: det-s, kind: onnx, model: {models}/shapedet-s/model.int8.onnx}}
  verify:
    - {{name: cv, kind: classical, options: {{detector: shapes}}}}
    - {{name: attr-s, kind: onnx, model: {models}/attrnet-s/model.int8.onnx}}
""")
    truth = write_scene_video(tmp_path / "clip.mp4", n_frames=40, seed=5)
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"frame_id": f"clip:{i}", "label": demo_truth(t.objects)}) + "\n" for i, t in enumerate(truth)
        )
    )
    traces = tmp_path / "traces.jsonl"
    args = [
        "run",
        str(DEMO_PROGRAM),
        "--source",
        str(tmp_path / "clip.mp4"),
        "--catalog",
        str(catalog),
        "--out",
        str(traces),
        "--policy",
        "random",
        "--labels",
        str(labels),
        "--quiet",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    logged = [json.loads(x) for x in traces.read_text().splitlines() if '"frame_id"' in x]
    assert all(c["propensity"] == pytest.approx(0.5) for t in logged for c in t["calls"])
    result = runner.invoke(app, ["replay", str(traces), "--policy", "static:0", "--labels", str(labels), "--json"])
    assert result.exit_code == 0, result.output
    (estimate,) = json.loads(result.output)
    assert estimate["policy"] == "static:0" and estimate["labelled"] == 40
    assert 0.0 < estimate["support"] < 1.0  # random sometimes chose what static:0 would have
    assert 0.0 <= estimate["accuracy_snips"] <= 1.0
