"""One `edgefmp run`: builds program, catalog, policy, source and sinks from options, runs the
stream loop, and returns the summary. The CLI and the demo both go through here."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from edgefmp.backends.catalog import Catalog, default_catalog_path, load_catalog
from edgefmp.cost.meters import select_meter
from edgefmp.errors import ConfigError, PolicyError
from edgefmp.files import check_output_file
from edgefmp.policies import Policy, create
from edgefmp.policies.feedback import AuditSampler, LabelRecord, read_labels
from edgefmp.program import load_program
from edgefmp.program.api import WorkBudget
from edgefmp.runtime.executor import Executor, check_sites
from edgefmp.runtime.learning import Learning
from edgefmp.runtime.loop import LoopHooks, run_stream
from edgefmp.runtime.progress import FailureReport, StreamProgress
from edgefmp.runtime.sinks import AnnotatedVideoSink, JsonlTraceSink
from edgefmp.runtime.sources import open_source
from edgefmp.runtime.summary import RunSummary, human_bytes

log = logging.getLogger(__name__)


def default_policy_name() -> str:
    """The best policy installed: ours once it exists, else the cheapest static assignment."""
    return "adaptive" if importlib.util.find_spec("edgefmp.policies.adaptive") else "static:0"


def zoo_catalog_path() -> Path:
    """The zoo catalog of a checkout (models/catalog.yaml, made by `edgefmp zoo build`)."""
    return Path(__file__).resolve().parents[2] / "models" / "catalog.yaml"


def resolve_catalog_path(path: Path | None) -> Path:
    """`path`, else the zoo catalog of a checkout (models/catalog.yaml), else the bundled one."""
    if path is not None:
        return path
    zoo = zoo_catalog_path()
    return zoo if zoo.is_file() else default_catalog_path()


def describe_catalog(given: Path | None, used: Path) -> str:
    """Which catalog a run used and why, for the summary."""
    if given is not None:
        return str(used)
    if used == default_catalog_path():
        return f"{used} (the bundled OpenCV catalog; no models/catalog.yaml in a checkout)"
    return f"{used} (the zoo catalog of this checkout, the default)"


# `--policy adaptive` without a preset: the project's promise, the cheapest routing within one
# point of accuracy of the largest backends (with no target at all it would only chase accuracy).
DEFAULT_ADAPTIVE_TARGETS = {"accuracy_gap": 1.0}


def build_policy(name: str | None) -> Policy:
    name = name or default_policy_name()
    if name.endswith((".yaml", ".yml")):
        from edgefmp.policies.presets import load_preset

        return load_preset(Path(name))
    if name == "adaptive":
        return create(name, targets=dict(DEFAULT_ADAPTIVE_TARGETS))
    return create(name)


def describe_policy(policy: Policy, name: str | None = None) -> str:
    """The policy of a run with its preset and targets, for the summary:
    `adaptive (target: accuracy at most 1 point below the largest backends)`."""
    text = policy.name
    name = name or default_policy_name()
    if name.endswith((".yaml", ".yml")):
        text += f" from preset {name}"
    targets = getattr(policy, "targets", None)
    wanted = describe_targets(targets) if targets is not None else []
    if wanted:
        text += f" (target: {'; '.join(wanted)})"
    return text


_RESOURCE_WORDS = {"latency_ms": "backend latency", "energy_j": "energy", "bytes": "network bytes"}


def describe_targets(targets: Any) -> list[str]:
    """`Targets` in words: ['mean backend latency <= 40 ms/frame']."""
    out = []
    gap = getattr(targets, "accuracy_gap", None)
    if gap is not None:
        least = _RESOURCE_WORDS.get(str(getattr(targets, "minimize", "latency_ms")), "cost")
        out.append(f"accuracy at most {gap:g} point(s) below the largest backends at the least {least}")
    for name, amount in (
        ("latency_ms", lambda v: f"{v:g} ms"),
        ("energy_j", lambda v: f"{v:g} J"),
        ("bytes", human_bytes),
    ):
        value = getattr(targets, name, None)
        if value is not None:
            out.append(f"mean {_RESOURCE_WORDS[name]} <= {amount(value)}/frame")
    return out


def check_policy_fits(policy: Policy, program: Any) -> None:
    """Refuse, before any frame, a policy that cannot route this program."""
    from edgefmp.policies.routing import RoutingPolicy

    if isinstance(policy, RoutingPolicy) and len(program.sites) > 1:
        raise ConfigError(
            f"policy 'routing' routes one monolithic call per frame, but {program.filename} has "
            f"{len(program.sites)} call sites ({', '.join(program.sites)}); use adaptive, linucb or "
            "paper for programs with several calls"
        )


@dataclass
class RunOptions:
    program: Path
    source: str
    out: Path | None = None
    catalog: Path | None = None
    policy: str | None = None
    max_frames: int | None = None
    video_out: Path | None = None
    state: Path | None = None
    labels: Path | None = None
    audit: float = 0.0
    save_every: int = 20
    local_only: set[str] = field(default_factory=set)
    summary_out: Path | None = None
    progress: bool = True
    source_options: dict[str, Any] = field(default_factory=dict)
    inflight: int = 1  # frames run at once; > 1 overlaps remote calls (runtime/overlap.py)
    order: str = "auto"  # with inflight > 1: "frame", "freshest" or "auto" (freshest for live)
    max_seconds: float | None = None  # per-frame time budget (WorkBudget.max_seconds); None: its default


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the summary of the frames done (already written to --summary-out)
    travels with it, so the command can still show it."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__(f"interrupted after {summary.frames} frames")
        self.summary = summary


def run_program(options: RunOptions, console: Console | None = None) -> RunSummary:
    """Run `options.program` on `options.source`; see `edgefmp run --help`.

    Everything the user gave is checked before models load (program, catalog, policy, state
    path, labels, local-only sites); the summary's clock starts once the stream does.
    """
    summary = RunSummary()
    program = load_program(options.program)
    catalog_path = resolve_catalog_path(options.catalog)
    spec = load_catalog(catalog_path)
    policy = build_policy(options.policy)
    check_policy_fits(policy, program)
    check_sites(program, options.local_only, "local-only")
    label_records = read_labels(options.labels) if options.labels is not None else None
    summary.policy = describe_policy(policy, options.policy)
    summary.catalog = describe_catalog(options.catalog, catalog_path)
    state_io = _policy_state_io(policy, options.state, console)
    budget = WorkBudget() if options.max_seconds is None else WorkBudget(max_seconds=options.max_seconds)
    with Catalog.open(spec) as catalog:
        meter = select_meter()
        executor = Executor(program, catalog, policy, meter=meter, budget=budget, local_only_sites=options.local_only)
        learning = _learning(options, executor, label_records)
        source = open_source(options.source, max_frames=options.max_frames, **options.source_options)
        summary.source_stats = source.stats
        sinks: list[Any] = [summary]
        if options.out is not None:
            sinks.append(JsonlTraceSink(options.out))
        if options.video_out is not None:
            sinks.append(AnnotatedVideoSink(options.video_out))
        log.info("running %s on %s with %s and policy %s", options.program, options.source, catalog_path, policy.name)
        progress = StreamProgress(console, total=options.max_frames, enabled=options.progress)
        failures = FailureReport(console)

        def on_frame(trace: Any) -> None:
            progress.update(trace)
            failures.update(trace)

        hooks = LoopHooks(feedback=learning, save_state=state_io, save_every=options.save_every, on_frame=on_frame)
        summary.start()  # models are loaded and the source is open: fps measures the stream
        interrupted = False
        try:
            with progress:
                if options.inflight > 1:
                    from edgefmp.runtime.overlap import run_stream_overlapped

                    run_stream_overlapped(
                        source,
                        executor,
                        sinks,
                        hooks,
                        max_frames=options.max_frames,
                        inflight=options.inflight,
                        order=options.order,
                    )
                else:
                    run_stream(source, executor, sinks, hooks, max_frames=options.max_frames)
        except KeyboardInterrupt:
            interrupted = True  # closing the catalog below ends the calls still in flight
        finally:
            source.close()
    summary.close()
    _feedback_notes(options, learning, summary, console)
    if interrupted:
        summary.notes.append(f"interrupted (Ctrl-C) after {summary.frames} frames; frames still in flight were dropped")
    if options.summary_out is not None:
        summary.write_json(options.summary_out)
    if interrupted:
        raise RunInterrupted(summary)
    return summary


def _say(console: Console | None, text: str, level: int = logging.WARNING) -> None:
    """One line for the user: on the CLI's console (stderr) when there is one, else logged."""
    if console is None:
        log.log(level, "%s", text)
    else:
        prefix = "[yellow]warning:[/] " if level >= logging.WARNING else ""
        console.print(prefix + escape(text), highlight=False)


def _feedback_notes(options: RunOptions, learning: Learning, summary: RunSummary, console: Console | None) -> None:
    """Say what the policy learned from: the labels that matched, or that nothing did."""
    warning = learning.unmatched_warning()
    if warning is not None:
        _say(console, warning)
    note = learning.labels_note()
    if note is not None:
        summary.notes.append(note)
    elif options.labels is None and options.audit <= 0 and summary.frames:
        summary.notes.append("no feedback (no --labels, no --audit): the policy learned costs only, not accuracy")


_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _not_a_state_file(path: Path) -> ConfigError:
    return ConfigError(
        f"{path} is not an edgefmp policy state file (those are the .npz archives, or .json files for "
        "a .json path, that `edgefmp run --state` writes); it was left untouched: pass a new path "
        "to start from a fresh state"
    )


def _check_state_path(path: Path) -> None:
    """Before the run: `--state` names a file whose folder exists (made here, as for --out) and
    can be written, and an existing file there is a state file (never overwrite anything else)."""
    if path.is_dir():
        raise ConfigError(f"--state {path} is a folder; give a file path such as {path / 'policy_state.npz'}")
    check_output_file(path, "the policy state")
    if path.exists():
        with path.open("rb") as f:
            head = f.read(16)
        looks_right = head.lstrip()[:1] == b"{" if path.suffix == ".json" else head.startswith(_NPZ_MAGIC)
        if not looks_right:
            raise _not_a_state_file(path)


def _policy_state_io(policy: Policy, path: Path | None, console: Console | None = None) -> Callable[[], None] | None:
    """Load the policy's state from `path` if it exists; return a saver for the loop."""
    if path is None:
        return None
    from edgefmp.policies.state import load_policy_state, save_policy_state

    _check_state_path(path)
    if path.exists():
        try:
            header = load_policy_state(policy, path)
        except PolicyError as exc:
            if "pickle" in str(exc).lower():  # numpy's advice to unpickle: never pass it on
                raise _not_a_state_file(path) from None
            raise
        saved_at = header.get("saved_at")
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved_at))
            if isinstance(saved_at, (int, float))
            else "at an unknown time"
        )
        _say(console, f"resumed policy {policy.name} from {path} (saved {when})", logging.INFO)

    def save() -> None:
        save_policy_state(policy, path)

    return save


def _learning(options: RunOptions, executor: Executor, label_records: list[LabelRecord] | None) -> Learning:
    """Labels if given; else audit runs of the largest configuration if asked for; the policy
    always observes every frame's costs (budgets need them even without labels)."""
    audit = reference = None
    if options.audit > 0:
        audit = AuditSampler(options.audit)
        reference = Executor(
            executor.program,
            executor.catalog,
            create("static:-1"),
            meter=executor.meter,
            budget=executor.budget,
            local_only_sites=executor.local_only_sites,
        )
    return Learning(
        executor.policy, labels=options.labels, audit=audit, reference=reference, label_records=label_records
    )
