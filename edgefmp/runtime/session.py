"""One `edgefmp run`: builds program, catalog, policy, source and sinks from options, runs the
stream loop, and returns the summary. The CLI and the demo both go through here."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from edgefmp.backends.catalog import Catalog, default_catalog_path, load_catalog
from edgefmp.cost.meters import select_meter
from edgefmp.policies import Policy, create
from edgefmp.policies.feedback import AuditSampler
from edgefmp.program import load_program
from edgefmp.runtime.executor import Executor
from edgefmp.runtime.learning import Learning
from edgefmp.runtime.loop import LoopHooks, run_stream
from edgefmp.runtime.progress import StreamProgress
from edgefmp.runtime.sinks import AnnotatedVideoSink, JsonlTraceSink
from edgefmp.runtime.sources import open_source
from edgefmp.runtime.summary import RunSummary

log = logging.getLogger(__name__)


def default_policy_name() -> str:
    """The best policy installed: ours once it exists, else the cheapest static assignment."""
    return "adaptive" if importlib.util.find_spec("edgefmp.policies.adaptive") else "static:0"


def resolve_catalog_path(path: Path | None) -> Path:
    """`path`, else the zoo catalog of a checkout (models/catalog.yaml), else the bundled one."""
    if path is not None:
        return path
    zoo = Path(__file__).resolve().parents[2] / "models" / "catalog.yaml"
    return zoo if zoo.is_file() else default_catalog_path()


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


def run_program(options: RunOptions, console: Console | None = None) -> RunSummary:
    """Run `options.program` on `options.source`; see `edgefmp run --help`."""
    program = load_program(options.program)
    catalog_path = resolve_catalog_path(options.catalog)
    spec = load_catalog(catalog_path)
    policy = build_policy(options.policy)
    state_io = _policy_state_io(policy, options.state)
    summary = RunSummary()
    with Catalog.open(spec) as catalog:
        meter = select_meter()
        executor = Executor(program, catalog, policy, meter=meter, local_only_sites=options.local_only)
        learning = _learning(options, executor)
        source = open_source(options.source, max_frames=options.max_frames, **options.source_options)
        summary.source_stats = source.stats
        sinks: list[Any] = [summary]
        if options.out is not None:
            sinks.append(JsonlTraceSink(options.out))
        if options.video_out is not None:
            sinks.append(AnnotatedVideoSink(options.video_out))
        log.info("running %s on %s with %s and policy %s", options.program, options.source, catalog_path, policy.name)
        progress = StreamProgress(console, total=options.max_frames, enabled=options.progress)
        hooks = LoopHooks(
            feedback=learning, save_state=state_io, save_every=options.save_every, on_frame=progress.update
        )
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
        finally:
            source.close()
    if options.summary_out is not None:
        summary.write_json(options.summary_out)
    return summary


def _policy_state_io(policy: Policy, path: Path | None) -> Any:
    """Load the policy's state from `path` if it exists; return a saver for the loop."""
    if path is None:
        return None
    from edgefmp.policies.state import load_policy_state, save_policy_state

    if path.exists():
        load_policy_state(policy, path)
        log.info("resumed policy %s from %s", policy.name, path)

    def save() -> None:
        save_policy_state(policy, path)

    return save


def _learning(options: RunOptions, executor: Executor) -> Learning:
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
            local_only_sites=executor.local_only_sites,
        )
    return Learning(executor.policy, labels=options.labels, audit=audit, reference=reference)
