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


def test_demo_runs_and_scores_against_ground_truth(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--frames", "12", "--workdir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "answers correct:" in result.output
    traces = [json.loads(x) for x in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert sum("frame_id" in t for t in traces) == 12
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 12
    assert (tmp_path / "annotated.mp4").stat().st_size > 0


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
