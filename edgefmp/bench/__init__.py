"""Benchmarks: suites of streams with ground truth, policy sweeps, reports, device profiles.

- `suite`: the suite file (YAML) and its validation; `tasks` / `streams`: the truth of each
  frame and the deterministic frames themselves (docs/BENCH.md);
- `cases` / `execute` / `runner`: which policies run, one query's cases in a worker, the
  parallel sweep; `cache`: each backend call measured once per stream, replayed with its cost;
- `record` / `metrics` / `report` / `plots`: scoring, comparisons, results JSON, markdown, PNGs;
- `profile`: `edgefmp profile`, whose JSON is a catalog's cost prior (`apply_profile`);
- `summary`: BENCHMARKS.md from several results folders; `outputs`: output locations checked
  before any work; `commands`: the `bench`, `bench-summary` and `profile` CLI commands.

Nothing here is imported by `import edgefmp`; matplotlib and torch load only when a plot is
drawn or the paper policy runs.
"""

from __future__ import annotations

from edgefmp.bench.prior import apply_profile, read_profile
from edgefmp.bench.profile import run_profile
from edgefmp.bench.suite import Suite, load_suite

__all__ = ["Suite", "apply_profile", "load_suite", "read_profile", "run_profile"]
