"""The `export` command's options: flags against a recipe, exit codes, messages, the output folder.

Each test runs the real command (typer's CliRunner) on tiny local models; the bad-option cases
must exit 2 with one clean line before any model is loaded.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgefmp.backends.manifest import parse_manifest
from edgefmp.errors import ConfigError
from edgefmp.export.commands import build_job
from edgefmp.export.recipes import load_recipe

pytest.importorskip("torch")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "EXPORT.md"
CLASSIFIER = "torch:tests.export.tiny_nets:build_classifier"


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["export", *args], env={"COLUMNS": "1000"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback instead of a message: {result.exception!r}\n{result.output}")
    return result.exit_code, " ".join(result.output.split())


def _recipe(folder: Path, model: str, **fields: str) -> Path:
    """A recipe of one size `s` for `model`, its other fields given as YAML text."""
    body = {
        "name": "cls",
        "family": "custom",
        "function": "classify",
        "task": "custom",
        "labels": "[cat, dog, car]",
        "precisions": "[fp16]",
        "batch": "[1]",
        "calib_method": "entropy",
    }
    body.update(fields)
    lines = [f"{key}: {value}" for key, value in body.items()]
    lines += ["sizes:", f"  - {{tag: s, model: '{model}', image_size: [32, 32]}}"]
    path = folder / "recipe.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ flags against a recipe


def test_explicit_flags_win_over_the_recipe_even_at_their_defaults(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "onnx:m.onnx")
    job = build_job(
        model=None, recipe=recipe, out=tmp_path / "o", precision="fp32", batch="dynamic", calib_method="minmax"
    )
    assert job.precisions == ["fp32"] and job.batches == [None] and job.calib_method == "minmax"
    job = build_job(model=None, recipe=recipe, out=tmp_path / "o")  # nothing given: the recipe decides
    assert job.precisions == ["fp16"] and job.batches == [1] and job.calib_method == "entropy"


def test_explicit_flags_win_through_the_command(
    app: typer.Typer, tmp_path: Path, tiny_onnx: Path, frames_dir: Path
) -> None:
    recipe = _recipe(tmp_path, f"onnx:{tiny_onnx}")
    out = tmp_path / "out"
    code, output = _run(
        app,
        "--recipe",
        str(recipe),
        "--precision",
        "fp32,int8",
        "--batch",
        "dynamic",
        "--calib",
        str(frames_dir),
        "--calib-method",
        "minmax",
        "--out",
        str(out),
    )
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["s-fp32", "s-int8-static"]
    manifest = parse_manifest((out / "s-int8-static" / "model.onnx.manifest.json").read_text(), "m")
    assert manifest.calibration is not None and manifest.calibration.method == "minmax"
    assert manifest.name == "cls-s-int8-static"  # the size tag once, not cls-s-s-int8-static


# ----------------------------------------------------------------------- clean exits


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--function", "classifier"], "--function: 'classifier' is not one of detect, verify, vqa, classify"),
        (["--function", "classify", "--holdout", "nohold"], "--holdout nohold: no such file or folder"),
        (["--function", "classify", "--calib-samples", "0"], "--calib-samples: 0 frames; take at least 1"),
    ],
)
def test_bad_options_exit_2_with_the_flag_named(
    app: typer.Typer, tmp_path: Path, args: list[str], message: str
) -> None:
    code, output = _run(app, CLASSIFIER, "--input-shape", "1x3x32x32", *args, "--out", str(tmp_path / "o"))
    assert code == 2 and message in output, output
    assert not (tmp_path / "o").exists()


def _out_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    return {
        "existing file": (blocker, "a file of that name exists"),
        "under a file": (blocker / "sub", "is a file, not a folder"),
        "unwritable": (Path("/proc/edgefmp-export-test"), "cannot create it"),
    }


@pytest.mark.parametrize("case", ["existing file", "under a file", "unwritable"])
def test_bad_output_folder_exits_2_before_any_work(app: typer.Typer, tmp_path: Path, case: str) -> None:
    if case == "unwritable" and not (sys.platform.startswith("linux") and Path("/proc").is_dir()):
        pytest.skip("needs Linux /proc")
    out, message = _out_cases(tmp_path)[case]
    code, output = _run(app, CLASSIFIER, "--input-shape", "1x3x32x32", "--function", "classify", "--out", str(out))
    assert code == 2 and message in output and "Traceback" not in output, output


def test_a_run_that_writes_nothing_leaves_no_output_folder(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper"
    args = [CLASSIFIER, "--input-shape", "1x3x32x32", "--function", "classify", "--precision", "int8-static"]
    code, output = _run(app, *args, "--out", str(out))
    assert code == 1 and "needs calibration frames" in output
    assert not (tmp_path / "new").exists()


def test_hf_task_and_folder_are_checked_before_loading(app: typer.Typer, tmp_path: Path) -> None:
    """A folder with only a config.json: no model could be loaded from it, so exit 2 proves the
    checks ran first; the list of tasks includes the VLM path's."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    out = tmp_path / "o"
    for args, message in (
        ([], "give --task"),
        (["--task", "depth-estimation"], "unsupported task 'depth-estimation'"),
        (["--task", "image-text-to-text"], "cannot be exported with --task image-text-to-text"),
    ):
        code, output = _run(app, f"hf:{folder}", *args, "--out", str(out))
        assert code == 2 and message in output, output
        if "supported" in output:
            assert "image-text-to-text" in output and "zero-shot-object-detection" in output
    assert not out.exists()


def test_supported_tasks_match_the_docs() -> None:
    from edgefmp.export.hf import supported_tasks
    from edgefmp.export.vlm import TASK

    row = next(line for line in DOCS.read_text().splitlines() if line.startswith("| `hf:`"))
    documented = set(re.findall(r"`([a-z][a-z-]+)`", row))
    assert documented == set(supported_tasks()) and TASK in documented


# ------------------------------------------------------------------------ messages


def test_brackets_in_messages_and_paths_are_printed(app: typer.Typer, tmp_path: Path) -> None:
    """rich markup must not eat `[...]` from errors, paths or reasons."""
    code, output = _run(app, CLASSIFIER, "--precision", "int8[x]", "--out", str(tmp_path / "o"))
    assert code == 2 and "'int8[x]'" in output, output
    out = tmp_path / "run[v1]"
    code, output = _run(
        app, CLASSIFIER, "--input-shape", "1x3x32x32", "--function", "classify", "--labels", "a,b,c", "--out", str(out)
    )
    assert code == 0 and f"model: {out}/fp32/model.onnx" in output, output


def test_tensorrt_hint_keeps_its_brackets(app: typer.Typer, tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    code, output = _run(app, "onnx:m.onnx", "--to", "tensorrt", "--out", str(tmp_path / "o"))
    assert code == 2 and "pip install 'edgefmp[trt]'" in output, output


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"function": "classifier"}, r"recipe.yaml: field function: 'classifier' is not one of detect, verify"),
        ({"calib_method": "kl"}, r"recipe.yaml: field calib_method: 'kl' is not one of minmax, entropy"),
        ({"precisions": "[fp32, int4]"}, r"recipe.yaml: field precisions: unknown precision 'int4'"),
        ({"batch": "[0]"}, r"recipe.yaml: field batch: 0 must be >= 1"),
        ({"precision": "[fp32]"}, r"recipe.yaml: field precision: unknown field; the fields are name"),
    ],
)
def test_recipe_errors_name_the_file_and_field_when_it_loads(
    tmp_path: Path, fields: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe(_recipe(tmp_path, "onnx:m.onnx", **fields))


def test_recipe_task_must_suit_hf_models(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"field task: 'custom' is not a task hf: models are exported for"):
        load_recipe(_recipe(tmp_path, "hf:./m"))


# ------------------------------------------------------------------------- Next: text


def test_next_text_suggests_a_catalog_entry_only_where_a_backend_serves(app: typer.Typer, tmp_path: Path) -> None:
    served = tmp_path / "cls"
    args = ["--input-shape", "1x3x32x32", "--out"]
    code, output = _run(app, CLASSIFIER, *args, str(served), "--function", "classify", "--labels", "a,b,c")
    assert code == 0 and "classify: - {name: build_classifier-fp32, kind: onnx," in output, output
    # a detector head with no postprocess: exported and verified, but no backend can decode it
    detector = "torch:tests.export.tiny_nets:build_detector"
    code, output = _run(app, detector, *args, str(tmp_path / "det"), "--function", "detect", "--labels", "a,b")
    assert code == 0 and "kind: onnx" not in output, output
    assert "no edgefmp backend serves these as exported" in output and "set `postprocess`" in output
