"""`run_program` end to end on small real media and the bundled OpenCV catalog: what it checks
before the stream starts, what it says while it runs, and what the summary reports."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from edgefmp.backends.base import Backend
from edgefmp.backends.catalog import default_catalog_path
from edgefmp.backends.registry import BACKEND_KINDS
from edgefmp.errors import ConfigError, EdgeFMPError
from edgefmp.results import Detections, Request, Result, Verdict
from edgefmp.runtime.session import RunOptions, run_program

BUNDLED = default_catalog_path()  # OpenCV only: no model to load, runs on any machine

TWO_SITES = """
def execute_command(image):
    for circle in image.find("circle"):
        if circle.verify_property("circle", "red"):
            return "yes"
    return "no"
"""

FAILING = """
def execute_command(image):
    items = [1]
    return items[5]
"""


def _program(tmp_path: Path, text: str = TWO_SITES, name: str = "program.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _console() -> Console:
    return Console(file=io.StringIO(), width=200, color_system=None)


def _said(console: Console) -> str:
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def _run(tmp_path: Path, video: Path, console: Console | None = None, **options: Any) -> Any:
    if "program" not in options:
        options["program"] = _program(tmp_path)
    options.setdefault("catalog", BUNDLED)
    return run_program(RunOptions(source=str(video), progress=False, **options), console=console)


# --- finding 1: fps covers the stream, not the loading of models ---------------------------

LOADED_AT: list[float] = []


class LoadRecordingBackend(Backend):
    """A real catalog backend (built from YAML by the registry) whose warm-up, the end of
    model loading, notes the time; it answers like an empty detector / a 'no' verifier."""

    kind = "test-load-recording"

    def warmup(self) -> None:
        LOADED_AT.append(time.perf_counter())

    def infer(self, request: Request) -> Result:
        return Detections() if self.function == "detect" else Verdict(value=False, confidence=1.0)


def test_the_summary_clock_starts_after_the_models_are_loaded(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKEND_KINDS, "test-load-recording", f"{__name__}:LoadRecordingBackend")
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "functions:\n"
        "  detect: [{name: det, kind: test-load-recording}]\n"
        "  verify: [{name: ver, kind: test-load-recording}]\n"
    )
    LOADED_AT.clear()
    summary = _run(tmp_path, make_video(frames=4), catalog=catalog)
    assert len(LOADED_AT) == 2
    assert summary.started_at > max(LOADED_AT)  # the stream's clock starts after loading
    assert summary.setup_s > 0 and summary.to_json()["setup_s"] == pytest.approx(summary.setup_s, abs=1e-4)


# --- finding 2 and 13: --state is checked before the run ----------------------------------


def test_state_in_a_missing_folder_is_created_and_saved(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    state = tmp_path / "new" / "deeper" / "state.json"
    _run(tmp_path, make_video(frames=3), state=state, save_every=10, policy="random")
    assert json.loads(state.read_text())["format"] == "edgefmp-policy-state"


def test_unwritable_state_path_fails_before_any_frame(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "traces.jsonl"
    with pytest.raises(ConfigError, match="policy state") as info:
        _run(tmp_path, make_video(frames=3), state=tmp_path / "a-file" / "state.json", out=out)
    assert "a-file" in str(info.value)
    assert not out.exists()  # refused before the stream, not at the first save


@pytest.mark.parametrize("name", ["clip.mp4", "state.json", "state.npz"])
def test_a_file_that_is_not_a_state_is_refused_and_left_alone(
    tmp_path: Path, make_video: Callable[..., Path], name: str
) -> None:
    video = make_video(frames=3)
    state = tmp_path / name
    if name != video.name:
        state.write_bytes(video.read_bytes())
    before = state.read_bytes()
    with pytest.raises(EdgeFMPError) as info:
        _run(tmp_path, video, state=state)
    message = str(info.value)
    assert "not an edgefmp policy state file" in message and str(state) in message
    assert "pickle" not in message.lower()
    assert state.read_bytes() == before


def test_resume_is_said_once_with_a_readable_time(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    video, state = make_video(frames=3), tmp_path / "state.npz"
    _run(tmp_path, video, state=state, policy="random")
    console = _console()
    _run(tmp_path, video, console, state=state, policy="random")
    said = _said(console)
    assert said.count("resumed policy random") == 1, said
    assert re.search(r"saved \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", said), said
    assert not re.search(r"\d{10}\.\d", said), said  # no raw epoch seconds


# --- finding 3: files that are not text ----------------------------------------------------


@pytest.mark.parametrize(
    ("option", "what"), [("labels", "labels file"), ("catalog", "catalog"), ("policy", "policy preset")]
)
def test_a_video_given_for_a_text_file_is_a_clear_error(
    tmp_path: Path, make_video: Callable[..., Path], option: str, what: str
) -> None:
    video = make_video(frames=3)
    given = video
    if option == "policy":  # a preset is a .yaml path
        given = tmp_path / "preset.yaml"
        given.write_bytes(video.read_bytes())
    with pytest.raises(ConfigError) as info:
        _run(tmp_path, video, **{option: str(given) if option == "policy" else given})
    message = str(info.value)
    assert message.startswith(f"{given}: not a {what}: it is not UTF-8 text"), message
    assert "expected" in message


# --- finding 4: failed frames are shown as they happen --------------------------------------


def test_failures_are_shown_once_per_kind_and_counted(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    console = _console()
    summary = _run(tmp_path, make_video(frames=5), console, program=_program(tmp_path, FAILING, "failing.py"))
    said = _said(console)
    assert said.count("failed: ") == 1, said  # five frames, one kind of error: shown once
    assert "frame clip:0 failed" in said and "IndexError" in said, said
    (group,) = summary.to_json()["errors"]
    assert group["frames"] == 5 and group["first_frame"] == "clip:0" and "IndexError" in group["error"]


# --- finding 5: labels that match no frame ---------------------------------------------------


def test_labels_matching_no_frame_id_are_warned_about_with_examples(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"frame_id": str(i), "label": "yes"}) + "\n" for i in range(3)))
    console = _console()
    summary = _run(tmp_path, make_video(frames=3), console, labels=labels)
    said = _said(console)
    assert "none of the 3 labels" in said and "'0'" in said and "'clip:0'" in said, said
    assert any("0 of 3 frames had a label" in note for note in summary.notes)


def test_matching_labels_are_counted_without_a_warning(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"frame_id": f"clip:{i}", "label": False}) + "\n" for i in range(2)))
    console = _console()
    summary = _run(tmp_path, make_video(frames=3), console, labels=labels)
    assert "warning" not in _said(console)
    assert any("2 of 3 frames had a label" in note for note in summary.notes)


# --- findings 10, 12, 14 --------------------------------------------------------------------


def test_routing_is_refused_up_front_for_a_program_with_two_sites(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    out = tmp_path / "traces.jsonl"
    with pytest.raises(ConfigError, match="routing") as info:
        _run(tmp_path, make_video(frames=3), policy="routing", out=out)
    assert "find@3:24" in str(info.value) and "verify_property@4:18" in str(info.value)
    assert not out.exists()


def test_an_unknown_local_only_site_is_refused_listing_the_sites(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    with pytest.raises(ConfigError, match="find@99:1") as info:
        _run(tmp_path, make_video(frames=3), local_only={"find@99:1"})
    assert "find@3:24" in str(info.value)


def test_the_summary_names_the_policy_with_its_target_and_the_catalog(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    summary = _run(tmp_path, make_video(frames=2), policy="adaptive")
    data = summary.to_json()
    assert data["policy"].startswith("adaptive (target: accuracy at most 1 point(s) below the largest")
    assert data["catalog"] == str(BUNDLED)
    preset = Path(__file__).resolve().parents[2] / "policies" / "adaptive-latency.yaml"
    data = _run(tmp_path, make_video(frames=2), policy=str(preset)).to_json()
    assert data["policy"] == f"adaptive from preset {preset} (target: mean backend latency <= 40 ms/frame)"
