"""`edgefmp profile`: statistics per backend on real ONNX Runtime sessions, and the profile as a
catalog's cost prior."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edgefmp.backends.catalog import load_catalog
from edgefmp.bench.prior import apply_profile, read_profile
from edgefmp.bench.profile import LatencyStats, run_profile
from edgefmp.cli import app
from edgefmp.errors import ConfigError

onnx = pytest.importorskip("onnx")
from tests.backends.conftest import colour_model, manifest_for, save, yolo_model  # noqa: E402


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """A catalog of two toy ONNX models (a detector and an attribute net) and a broken entry."""
    det = save(yolo_model(), tmp_path / "det.onnx", manifest_for("yolo", params=1234))
    attr = save(colour_model(attributes=True), tmp_path / "attr.onnx", manifest_for("attributes", size=(16, 16)))
    catalog = {
        "version": 1,
        "name": "toy",
        "functions": {
            "detect": [{"name": "toy-det", "kind": "onnx", "model": det.name}],
            "vqa": [
                {"name": "toy-attr", "kind": "onnx", "model": attr.name, "cost": {"latency_ms": 99.0}},
                {"name": "gone", "kind": "onnx", "model": "missing.onnx"},
            ],
        },
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    return path


def test_latency_stats() -> None:
    s = LatencyStats.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s.n, s.p50, s.min, s.max) == (5, 3.0, 1.0, 100.0)
    assert s.p99 > s.p95 > s.p90 > s.p50 and s.std > 0


def test_profile_a_catalog_and_use_it_as_the_prior(zoo: Path, tmp_path: Path) -> None:
    data = run_profile([str(zoo)], runs=5, warmup=2, meter_name="estimated")
    rows = {r["name"]: r for r in data["backends"]}
    det = rows["toy-det"]
    assert det["error"] is None and len(det["warmup_ms"]) == 2 and det["latency_ms"]["n"] == 5
    assert det["session_ms"] > 0 and det["energy_source"] == "estimated" and det["energy_j_per_call"] > 0
    assert det["throughput_batch1_per_s"] > 0 and det["best_batch"] >= 1 and det["params"] == 1234
    assert "ConfigError" in rows["gone"]["error"]  # a broken backend is a row, not an aborted profile
    assert data["environment"]["cores"] and "CPUExecutionProvider" in data["environment"]["providers"]
    spec = apply_profile(load_catalog(zoo), data)
    by_name = {b.name: b for fn in spec.functions.values() for b in fn}
    assert by_name["toy-det"].cost.latency_ms == pytest.approx(det["latency_ms"]["mean"])
    assert by_name["toy-det"].cost.params == 1234
    assert by_name["toy-attr"].cost.latency_ms == pytest.approx(rows["toy-attr"]["latency_ms"]["mean"])
    assert by_name["gone"].cost.latency_ms is None  # not measured: keeps its prior
    assert load_catalog(zoo).functions["vqa"][0].cost.latency_ms == 99.0  # the input is not modified


def test_cli_profile_writes_json_and_a_profiled_catalog(zoo: Path, tmp_path: Path) -> None:
    out, cat = tmp_path / "p.json", tmp_path / "sub" / "profiled.yaml"
    result = CliRunner().invoke(
        app,
        [
            "profile",
            str(zoo),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--out",
            str(out),
            "--write-catalog",
            str(cat),
            "--meter",
            "estimated",
            "--no-batches",
        ],
    )
    assert result.exit_code == 0, result.output
    data = read_profile(out)
    assert data["format"] == "edgefmp.profile" and data["runs"] == 3
    assert data["command"].startswith(f"edgefmp profile {zoo} --out {out}") and "--runs 3" in data["command"]
    assert f"Command: `{data['command']}`" in out.with_suffix(".md").read_text()
    assert "| detect | toy-det |" in out.with_suffix(".md").read_text()
    spec = load_catalog(cat)  # relative model paths were rewritten for the new folder
    det = spec.functions["detect"][0]
    assert det.resolve(det.model or "").is_file() and det.cost.latency_ms is not None


def test_cli_profile_checks_its_output_paths_before_measuring(zoo: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should be")
    result = CliRunner().invoke(app, ["profile", str(zoo), "--runs", "3", "--out", str(blocker / "p.json")])
    assert result.exit_code != 0
    assert "cannot write the profile" in result.output and "taken" in result.output
    assert "profiled" not in result.output  # nothing was measured, so nothing was lost
    assert blocker.read_text().startswith("a file")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a folder where no file can be created")
def test_cli_profile_refuses_a_folder_that_takes_no_files_before_measuring(zoo: Path) -> None:
    # /proc exists (so the folder check passes) but no file can be created there
    result = CliRunner().invoke(app, ["profile", str(zoo), "--runs", "3", "--out", "/proc/p.json"])
    assert result.exit_code == 2 and "cannot write the profile to /proc/p.json" in result.output.replace("\n", " ")
    assert "profiled" not in result.output


def test_profile_tables_name_the_two_throughputs_and_fit_80_columns(zoo: Path) -> None:
    from rich.console import Console

    from edgefmp.bench.commands import _print_profile
    from edgefmp.bench.profile import CALLS_PER_S, RAW_BATCH, profile_markdown

    data = run_profile([str(zoo)], runs=3, warmup=1, meter_name="estimated")
    console = Console(width=80, record=True)
    _print_profile(data, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in ("detect/toy-det", "vqa/toy-attr", "vqa/gone"):
        assert name in text.splitlines()  # each backend named whole, on its own line
    flat = " ".join(text.split())
    assert f"{CALLS_PER_S} " in flat and RAW_BATCH in flat and "(b=" in flat  # the raw run says its batch
    assert "ConfigError" in flat  # the broken backend's error is shown
    md = profile_markdown(data)
    assert f"| {CALLS_PER_S} | {RAW_BATCH} |" in md and "(pre/post-processing excluded)" in md


def test_profile_model_files_and_errors(zoo: Path, tmp_path: Path) -> None:
    data = run_profile([str(zoo.parent / "det.onnx")], runs=3, warmup=0, meter_name="estimated", batches=False)
    assert [r["function"] for r in data["backends"]] == ["detect"]
    with pytest.raises(ConfigError, match="neither a catalog"):
        run_profile([str(zoo.parent / "catalog.yaml"), str(zoo)], runs=3)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not an edgefmp profile"):
        read_profile(bad)


def test_bench_opens_the_catalog_with_profile_priors_and_pinned_threads(zoo: Path, tmp_path: Path) -> None:
    from edgefmp.bench.execute import open_catalog

    data = run_profile([str(zoo.parent / "det.onnx")], runs=3, warmup=0, meter_name="estimated", batches=False)
    data["backends"][0]["name"] = "toy-det"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    broken = yaml.safe_load(zoo.read_text())
    broken["functions"]["vqa"].pop()  # the missing model would fail to open
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(broken))
    with open_catalog(str(good), threads=1, profile=str(path)) as cat:
        det = cat.backends("detect")[0]
        assert det.spec.cost.latency_ms == pytest.approx(data["backends"][0]["latency_ms"]["mean"])
        assert det.spec.options["intra_op_threads"] == 1


def test_timed_calls_cycle_over_distinct_scenes() -> None:
    """A backend that remembers recent images (the OpenCV tier does) must be timed on new
    frames: the calls take more distinct scenes than it remembers, in turn."""
    from edgefmp.backends.catalog import BackendSpec
    from edgefmp.backends.classical import RECENT_IMAGES
    from edgefmp.bench.profile import SAMPLE_SCENES, profile_backend, sample_requests
    from edgefmp.cost.meters import select_meter
    from edgefmp.results import Detections

    samples = sample_requests()
    assert SAMPLE_SCENES > RECENT_IMAGES
    assert all(len(requests) == SAMPLE_SCENES for requests in samples.values())
    frames = samples["detect"]
    assert len({r.image.tobytes() for r in frames}) == SAMPLE_SCENES
    seen: list[int] = []

    def detector(request: Any) -> Detections:
        seen.append(next(i for i, r in enumerate(frames) if r.image is request.image))
        return Detections()

    spec = BackendSpec(name="seen", kind="callable", function="detect", options={"fn": detector})
    row = profile_backend(spec, frames, select_meter("estimated"), runs=2 * SAMPLE_SCENES, warmup=3, batches=False)
    assert row.error is None and row.latency_ms is not None and row.latency_ms.n == 2 * SAMPLE_SCENES
    # the timed calls go on from where the warm-up stopped (not back to scene 0, which the
    # warm-up just showed): no timed call repeats an image among the last RECENT_IMAGES calls
    assert seen == [i % SAMPLE_SCENES for i in range(3 + 2 * SAMPLE_SCENES)]
    for k in range(3, len(seen)):
        assert seen[k] not in seen[max(0, k - RECENT_IMAGES) : k], (k, seen)
