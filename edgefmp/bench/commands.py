"""`edgefmp bench`, `edgefmp bench-summary` and `edgefmp profile`: thin typer commands over the bench library (they
print with rich; the library logs)."""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgefmp.errors import ConfigError, EdgeFMPError

console = Console(stderr=True)
out = Console()

QUICK_FRAMES = 40
QUICK_QUERIES = 3


def _fail(exc: EdgeFMPError) -> typer.Exit:
    from edgefmp.cli import print_error  # here: cli imports this module while it loads

    print_error(exc)
    return typer.Exit(2)


class _SweepProgress:
    """Rich bars for a sweep: one overall bar of (query, case) runs, one bar per running query."""

    def __init__(self, n_queries: int, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.overall = self.progress.add_task("queries", total=n_queries)
        self.bars: dict[str, Any] = {}
        self.cases: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            q = str(event.get("query"))
            kind = event.get("event")
            if kind == "query_start":
                self.cases[q] = [0, int(event["cases"])]
                self.bars[q] = self.progress.add_task(f"{q}", total=int(event["frames"]))
            elif kind == "case_start" and q in self.bars:
                c = self.cases[q]
                c[0] += 1
                self.progress.update(self.bars[q], completed=0, description=f"{q} [{c[0]}/{c[1]}] {event['case']}")
            elif kind == "frames" and q in self.bars:
                self.progress.update(self.bars[q], completed=int(event["done"]))
            elif kind == "query_done":
                if q in self.bars:
                    self.progress.remove_task(self.bars.pop(q))
                self.progress.advance(self.overall)
                if event.get("error"):
                    failed = f"query {q} failed:"
                    self.progress.console.print(
                        f"[yellow]{escape(failed)}[/] {escape(str(event['error']))}", highlight=False
                    )


def bench(
    ctx: typer.Context,
    suite: Annotated[Path, typer.Argument(help="suite YAML (bench/suites/binary.yaml, open.yaml, or your own)")],
    catalog: Annotated[
        Path | None, typer.Option(help="catalog YAML (default: models/catalog.yaml, else the bundled one)")
    ] = None,
    policies: Annotated[
        list[str] | None, typer.Option(help="families: static,routing,cascade,paper,adaptive (default all)")
    ] = None,
    budgets: Annotated[
        list[str] | None, typer.Option(help="adaptive budgets: 40ms, 2J, 50kB, 5% (of always-largest), gap:1, none")
    ] = None,
    weights: Annotated[
        list[str] | None, typer.Option(help="paper / routing cost weights (largest backend = w score units)")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="results folder (default runs/bench/<suite>)")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="worker processes (at most 2, and at most the cores; more is cut, with a warning)"),
    ] = 2,
    quick: Annotated[
        bool, typer.Option(help=f"CI: {QUICK_QUERIES} queries x {QUICK_FRAMES} frames, fewer cases")
    ] = False,
    max_frames: Annotated[int | None, typer.Option(min=10, help="frames per query (a prefix of each stream)")] = None,
    queries: Annotated[list[str] | None, typer.Option(help="only these query ids")] = None,
    max_static: Annotated[
        int, typer.Option(min=1, help="enumerate all static assignments up to this many per query")
    ] = 64,
    paper_resolution: Annotated[int, typer.Option(min=8, help="paper router input size (the paper: 224)")] = 32,
    paper_width: Annotated[int, typer.Option(min=4, help="paper router ResNet-18 width (the paper: 64)")] = 8,
    replay: Annotated[bool, typer.Option(help="measure each (backend, request) once per stream and replay it")] = True,
    threads: Annotated[int, typer.Option(min=1, help="ONNX Runtime / BLAS threads per worker")] = 1,
    profile_path: Annotated[
        Path | None, typer.Option("--profile", help="`edgefmp profile` JSON: the backends' cost priors")
    ] = None,
    meter: Annotated[str, typer.Option(help="energy meter: auto, jetson, nvml, rapl, estimated")] = "auto",
    remote: Annotated[
        bool, typer.Option(help="serve each function's largest backend with `edgefmp serve` on loopback")
    ] = True,
    remote_link: Annotated[
        str,
        typer.Option(help="shape the link to the remote tier, e.g. rtt=40ms,bw=20mbit (docs/REMOTE.md); '' = loopback"),
    ] = "",
    plots: Annotated[bool, typer.Option(help="write the PNG plots (needs matplotlib)")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
    from_results: Annotated[
        Path | None, typer.Option(help="run nothing: rebuild the report of this results.json (same suite)")
    ] = None,
) -> None:
    """Run policies x budgets on a suite's streams; write results JSON, a markdown table and plots."""
    from edgefmp.bench.cases import plan_cases
    from edgefmp.bench.execute import open_catalog
    from edgefmp.bench.machine import environment
    from edgefmp.bench.report import build_report, write_report
    from edgefmp.bench.runner import SweepOptions, plan_workers, run_sweep
    from edgefmp.bench.suite import load_suite
    from edgefmp.files import check_output_dir
    from edgefmp.runtime.session import resolve_catalog_path

    command = _command_line(ctx)
    try:
        spec = load_suite(suite)
        if from_results is not None:
            _rebuild(from_results, spec, out_dir, plots)
            return
        # The results folder is checked before any work: a sweep takes minutes to hours.
        target = check_output_dir(out_dir or Path("runs") / "bench" / spec.name, "the results")
        catalog_path = resolve_catalog_path(catalog)
        if remote_link.strip():
            from edgefmp.netem import NetConditions

            NetConditions.parse(remote_link)  # a typo fails here, not after the first cases
            if not remote:
                raise ConfigError("--remote-link shapes the link to the remote tier; it needs --remote")
        if quick:
            budgets = budgets or ["gap:1", "5%"]
            weights = weights or ["1"]
            max_frames = max_frames or QUICK_FRAMES
            queries = queries or [q.id for q in spec.queries[:QUICK_QUERIES]]
            max_static = min(max_static, 8)
        cases = plan_cases(policies, budgets, weights, {"resolution": paper_resolution, "width": paper_width})
        opts = SweepOptions(
            catalog=str(catalog_path),
            workers=workers,
            max_frames=max_frames,
            queries=[q for item in queries for q in item.split(",")] if queries else None,
            max_static=max_static,
            replay=replay,
            threads=threads,
            profile=str(profile_path) if profile_path is not None else None,
            meter=meter,
            remote=remote and not str(catalog_path).startswith("py:"),
            remote_link=remote_link,
        )
        with open_catalog(str(catalog_path), profile=opts.profile) as cat:
            cat_desc = _describe_catalog(cat, catalog_path, opts.profile)
        link = f", through a shaped link ({remote_link})" if remote_link.strip() else ""
        cat_desc["remote_tier"] = f"edgefmp serve on loopback (KServe, JPEG){link}" if opts.remote else None
        n_queries = len(opts.queries) if opts.queries else len(spec.queries)
        n_workers, note = plan_workers(workers, n_queries)  # the sweep logs `note` as a warning
        progress = _SweepProgress(n_queries, enabled=not quiet)
        console.print(
            f"bench {spec.name}: {n_queries} queries, {len(cases)} case families/settings, "
            f"catalog {catalog_path}, {n_workers} worker(s)",
            highlight=False,
        )
        with progress.progress:
            run = run_sweep(str(suite), cases, opts, on_progress=progress)
        report = build_report(run, spec, command, environment(), cat_desc)
        written = write_report(report, target, plots=plots)
    except EdgeFMPError as exc:
        raise _fail(exc) from None
    _print_rows(report)
    out.print(f"{run.seconds:.0f} s; wrote {', '.join(str(p) for p in written)}")


def _rebuild(results: Path, spec: Any, out_dir: Path | None, plots: bool) -> None:
    """Rebuild a report from a results file: same records, command and environment. The file
    is checked first: a results object of this suite (not a profile, not another suite's)."""
    from edgefmp.bench.report import build_report, check_results, check_same_suite, run_from_results, write_report
    from edgefmp.files import check_output_dir, read_text_file

    expected = "the results.json that `edgefmp bench` writes"
    text = read_text_file(results, "results file", expected)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{results}: not JSON ({exc}); expected {expected}") from exc
    check_same_suite(check_results(data, results), spec, results)
    target = check_output_dir(out_dir or results.parent, "the results")
    report = build_report(run_from_results(data), spec, data["command"], data["environment"], data["catalog"])
    written = write_report(report, target, plots=plots)
    _print_rows(report)
    out.print(f"rebuilt; wrote {', '.join(str(p) for p in written)}")


def _command_line(ctx: typer.Context) -> str:
    """The command as an equivalent command line: arguments, then every option not at its
    default, so results say exactly how to make them again (also when called in-process)."""
    parts = ["edgefmp", ctx.info_name or "bench"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.param_type_name == "argument":
            values = value if isinstance(value, (list, tuple)) else [value]
            parts += [str(v) for v in values]
            continue
        if value == param.default or value is None or value == []:
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            parts.append(flag if value else (param.secondary_opts or [flag])[0])
        elif isinstance(value, (list, tuple)):
            parts += [f"{flag} {v}" for v in value]
        else:
            parts.append(f"{flag} {value}")
    return " ".join(shlex.quote(p) if " " not in p else p for p in parts)


def _describe_catalog(cat: Any, path: Path, profile: str | None) -> dict[str, Any]:
    """What the results were measured with: the catalog (and a digest of its file), its
    backends with their priors, and the profile those priors came from."""
    import hashlib

    digest = hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest() if path.is_file() else None
    return {
        "name": cat.spec.name,
        "path": str(path),
        "digest": digest,
        "profile": profile,
        "functions": {
            fn: [
                {
                    "name": b.name,
                    "kind": b.kind,
                    "location": b.location,
                    "params": b.spec.cost.params,
                    "prior_latency_ms": b.spec.cost.latency_ms,
                }
                for b in cat.backends(fn)
            ]
            for fn in cat.functions
        },
    }


def _natural_width(table: Table, console: Console) -> int:
    """How wide `table` is with nothing wrapped or cut."""
    return Measurement.get(console, console.options.update(max_width=100_000), table).maximum


def _print_records(
    console: Console, title: str, headers: list[str], rows: list[list[str]], notes: list[str] | None = None
) -> None:
    """`rows` as a table when it fits the console with nothing cut, else one block per row: its
    name on a line of its own, then its "header value" pairs packed into lines (a pair is never
    split), so an 80-column terminal or a pipe shows every name and value whole."""
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column(_inline(headers[0]), no_wrap=True)
    for h in headers[1:]:
        table.add_column(h, no_wrap=True, justify="right")
    for r in rows:
        table.add_row(*(escape(v) for v in r))
    if _natural_width(table, console) <= console.width:
        console.print(table)
    else:
        console.print(f"[bold]{escape(title)}[/]", highlight=False)
        for r in rows:
            console.print(f"[bold]{escape(r[0])}[/]", highlight=False)
            # pairs packed into lines by hand, so no "header value" pair is split by a wrap
            lines = [""]
            for h, v in zip(headers[1:], r[1:], strict=True):
                pair = f"{_inline(h)} {v}"
                if not v:
                    continue
                if lines[-1] and len(lines[-1]) + 3 + len(pair) > console.width - 2:
                    lines.append("")
                lines[-1] += (" | " if lines[-1] else "") + pair
            for line in lines:
                console.print("  " + escape(line), highlight=False, overflow="fold")
    for note in notes or []:
        console.print(escape(note), highlight=False)


def _inline(header: str) -> str:
    """A table header on one line ("over-\nhead" -> "overhead", "latency\nms" -> "latency ms")."""
    return header.replace("-\n", "").replace("\n", " ")


def _num(v: Any) -> str:
    """A console number: 3 significant digits, thousands whole ("1,234"); "-" when unknown."""
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _print_rows(report: dict[str, Any], console: Console | None = None) -> None:
    """The main table (case names whole; results.md has every column) and the checks."""
    console = console or out
    metric = "F1" if report["suite"]["metric"] == "f1" else "accuracy"
    headers = ["case", metric, "latency\nms", "router\nms", "energy\nJ", "params\nM", "over-\nhead", "errors"]
    rows = [
        [
            r["case"],
            *(_num(r[k]) for k in ("metric", "latency_ms", "router_ms", "energy_j", "params_m", "overhead_ratio")),
            str(len(r["errors"])) if r["errors"] else "",
        ]
        for r in report["rows"]
    ]
    failed = report["suite"].get("queries_failed") or []
    notes = []
    for r in report["rows"]:
        if r["errors"]:
            q, e = next(iter(r["errors"].items()))
            notes.append(f"{r['case']}: failed on {len(r['errors'])} query(ies), e.g. {q}: {e[:160]}")
    if failed:
        ran = report["suite"]["queries_run"] - len(failed)
        notes.append(f"partial: every row is over {ran} of {report['suite']['queries_run']} queries; failed:")
        notes += [f"  {q}: {report['query_errors'][q]}" for q in failed]
    _print_records(console, f"{report['suite']['name']}: {metric} and cost per frame", headers, rows, notes)
    style = {"PASS": "green", "MISS": "red", "INFO": "cyan"}
    for c in report.get("headline", {}).get("checks", []):
        console.print(
            f"({c['key']}) [{style.get(c['status'], 'yellow')}]{c['status']}[/] "
            f"{escape(c['claim'])}: {escape(c['text'])}",
            highlight=False,
        )


def bench_summary(
    ctx: typer.Context,
    folders: Annotated[
        list[Path], typer.Argument(help="results folders of `edgefmp bench` (each with a results.json)")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="the summary page")] = Path("BENCHMARKS.md"),
) -> None:
    """Write one markdown page (BENCHMARKS.md) from several results folders: per suite the command,
    machine, wall time, main table, headline checks and plot links."""
    from edgefmp.bench.summary import load_results, write_summary

    try:
        results = [load_results(f) for f in folders]
        write_summary(results, out_path, _command_line(ctx))
    except EdgeFMPError as exc:
        raise _fail(exc) from None
    table = Table(title="headline checks")
    table.add_column("claim")
    for r in results:
        table.add_column(r.name)
    style = {"PASS": "green", "MISS": "red", "INFO": "cyan"}
    keys = list(dict.fromkeys(c.key for r in results for c in r.checks))
    for key in keys:
        cells = []
        for r in results:
            status = next((c.status for c in r.checks if c.key == key), "NOT RUN")
            cells.append(f"[{style.get(status, 'yellow')}]{status}[/]")
        table.add_row(f"({key}) " + next(c.claim for r in results for c in r.checks if c.key == key), *cells)
    out.print(table)
    out.print(f"wrote {out_path}", highlight=False)


def profile(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(help="a catalog YAML, or ONNX model files")],
    out_path: Annotated[Path | None, typer.Option("--out", help="profile JSON (default: print only)")] = None,
    runs: Annotated[int, typer.Option(min=2, help="timed calls per backend")] = 100,
    warmup: Annotated[int, typer.Option(min=0, help="untimed warm-up calls, reported apart")] = 3,
    meter: Annotated[str, typer.Option(help="energy meter: auto, jetson, nvml, rapl, estimated")] = "auto",
    batches: Annotated[bool, typer.Option(help="also measure throughput at batch sizes 1..32 (ONNX)")] = True,
    threads: Annotated[
        int | None, typer.Option(min=1, help="pin ONNX Runtime threads (default: the catalog's)")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="write a latency plot (PNG) here")] = None,
    write_catalog: Annotated[
        Path | None, typer.Option(help="write the catalog with its cost priors set from this profile")
    ] = None,
) -> None:
    """Measure every backend on this device (latency percentiles, throughput, memory, energy)."""
    from edgefmp.backends.catalog import load_catalog
    from edgefmp.bench.prior import apply_profile, catalog_yaml
    from edgefmp.bench.profile import profile_markdown, run_profile
    from edgefmp.files import check_output_file, write_text_atomic

    try:
        if write_catalog is not None and not (len(targets) == 1 and targets[0].endswith((".yaml", ".yml"))):
            raise _bad("--write-catalog needs a catalog YAML as the target")
        # Paths are checked before measuring (a file is created in each folder and removed),
        # so a typo or an unwritable place does not cost the whole profile.
        for path, what in ((out_path, "the profile"), (write_catalog, "the catalog"), (plot, "the plot")):
            if path is not None:
                check_output_file(path, what)
        data = run_profile(
            targets,
            command=_command_line(ctx),
            runs=runs,
            warmup=warmup,
            meter_name=meter,
            batches=batches,
            threads=threads,
            on_backend=lambda r: console.print(f"profiled {r.function}/{r.name}", highlight=False),
        )
        if out_path is not None:
            write_text_atomic(out_path, json.dumps(data, indent=1) + "\n", "the profile")
            write_text_atomic(out_path.with_suffix(".md"), profile_markdown(data), "the profile table")
        if write_catalog is not None:
            spec = apply_profile(load_catalog(targets[0]), data)
            write_text_atomic(
                write_catalog,
                f"# {targets[0]} with cost priors measured by `edgefmp profile` ({data['created']})\n"
                + catalog_yaml(spec, write_catalog.parent),
                "the catalog",
            )
        if plot is not None:
            from edgefmp.bench.plots import plot_profile

            plot_profile(data, plot)
    except EdgeFMPError as exc:
        raise _fail(exc) from None
    _print_profile(data)


def _bad(message: str) -> EdgeFMPError:
    from edgefmp.errors import ConfigError

    return ConfigError(message)


def _print_profile(data: dict[str, Any], console: Console | None = None) -> None:
    """The profile as a table when the console is wide enough, else one block per backend
    (`_print_records`); the markdown beside `--out` has the same columns."""
    from edgefmp.bench.profile import CALLS_PER_S, RAW_BATCH, raw_batch_measured

    console = console or out
    env = data["environment"]
    headers = [
        "backend",
        "session\nms",
        "warm-up\nms",
        "mean\nms",
        "p50",
        "p90",
        "p95",
        "p99",
        "std",
        CALLS_PER_S.replace(" (", "\n("),
        RAW_BATCH.replace(" (", "\n("),
        "RSS\nMB",
        "J/call\n(meter)",
        "error",
    ]
    rows = []
    for r in data["backends"]:
        lat = r["latency_ms"] or {}
        best = f"{_num(r['throughput_best_per_s'])} (b={r['best_batch']})" if raw_batch_measured(r) else "-"
        rows.append(
            [
                f"{r['function']}/{r['name']}",
                _num(r["session_ms"]),
                ", ".join(f"{w:.3g}" for w in r["warmup_ms"]) or "-",
                *(_num(lat.get(k)) for k in ("mean", "p50", "p90", "p95", "p99", "std")),
                _num(r["throughput_batch1_per_s"]),
                best,
                _num(r["peak_rss_mb"]),
                f"{_num(r['energy_j_per_call'])} ({r['energy_source']})",
                r["error"] or "",
            ]
        )
    notes = [
        f"latency: the full call (pre-processing, model, post-processing); {CALLS_PER_S} = 1000 / mean; "
        f"{RAW_BATCH}: the ONNX model run alone (no pre/post-processing) at its fastest batch size b",
        f"{env.get('cpu')}, {env.get('cores')} cores; providers {', '.join(env.get('providers', []))}; "
        f"versions {json.dumps(env.get('versions'))}" + (f"; GPU {json.dumps(env['gpu'])}" if env.get("gpu") else ""),
    ]
    title = f"profile of {data['source']} ({data['runs']} runs; meter {data['meter']})"
    _print_records(console, title, headers, rows, notes)


def register(app: typer.Typer) -> None:
    """Add `bench`, `bench-summary` and `profile` to the edgefmp CLI."""
    app.command(name="bench")(bench)
    app.command(name="bench-summary")(bench_summary)
    app.command(name="profile")(profile)


__all__ = ["register"]
