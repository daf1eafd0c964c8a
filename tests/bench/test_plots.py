"""Plots of a real (tiny) report, inspected as matplotlib figures: what they show and where."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from edgefmp.bench.cases import plan_cases  # noqa: E402
from edgefmp.bench.metrics import CaseSummary, hypervolume, normalised, pareto, points  # noqa: E402
from edgefmp.bench.plots import (  # noqa: E402
    backend_colors,
    curves_figure,
    fronts_figure,
    mix_figure,
    site_mix_figure,
)
from edgefmp.bench.report import build_report  # noqa: E402
from edgefmp.bench.runner import SweepOptions, run_sweep  # noqa: E402
from edgefmp.bench.suite import load_suite  # noqa: E402
from tests.bench.fakes import REF  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import yaml

    from tests.bench.conftest import tiny_suite_data

    path = tmp_path_factory.mktemp("plots") / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_suite_data(frames=10), sort_keys=False))
    cases = plan_cases(["static", "cascade", "adaptive", "routing"], ["gap:1", "5%"], ["1"])
    run = run_sweep(str(path), cases, SweepOptions(catalog=REF, workers=1, block=2))
    return build_report(run, load_suite(path), "edgefmp bench tiny.yaml", {}, {"name": "fake"})


@pytest.fixture
def close() -> Iterator[Callable[[Any], Any]]:
    import matplotlib.pyplot as plt

    figures: list[Any] = []

    def keep(fig: Any) -> Any:
        figures.append(fig)
        return fig

    yield keep
    for fig in figures:
        plt.close(fig)


def _disjoint(fig: Any, legend: Any) -> bool:
    """Whether `legend` covers no part of any axes of `fig` (in display coordinates)."""
    fig.canvas.draw()
    box = legend.get_window_extent()
    return not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)


def test_zero_cost_cases_are_on_the_front_plot_and_counted(report: dict[str, Any], close: Any) -> None:
    zero = copy.deepcopy(report)
    row = next(r for r in zero["rows"] if r["case"] == "static:0")
    row["params_m"] = 0.0  # as the OpenCV tier (no parameters) measures
    fig = close(fronts_figure(zero, "params_m"))
    ax = fig.axes[0]
    xs = [x for c in ax.collections for x, _ in c.get_offsets()]
    assert 0.0 in xs  # plotted, not dropped by a log axis
    left, right = ax.get_xlim()
    assert left < 0.0 < right  # and inside the visible range
    # the front and the hypervolume count it too
    rows = [CaseSummary(**r) for r in zero["rows"]]
    front = pareto(points(rows, "params_m"))
    assert front[0].case == "static:0" and front[0].cost == 0.0
    only = [p for p in points(rows, "params_m") if p.case == "static:0"]
    assert hypervolume(normalised(only, zero["largest"]["params_m"])) == pytest.approx(1.1 * row["metric"])


def test_legends_hide_no_data(report: dict[str, Any], close: Any) -> None:
    front = close(fronts_figure(report, "latency_ms"))
    assert _disjoint(front, front.axes[0].get_legend())
    curves = close(curves_figure(report))
    assert len(curves.legends) == 1 and _disjoint(curves, curves.legends[0])  # one legend, for both panels
    labels = [t.get_text() for t in curves.legends[0].get_texts()]
    assert "largest" in labels and "gap settles (confirmed)" in labels


def test_one_colour_per_backend_in_every_mix_panel(report: dict[str, Any], close: Any) -> None:
    import matplotlib.colors as mcolors

    colors = backend_colors(report)
    seen: dict[str, tuple[float, ...]] = {}
    figures = [close(mix_figure(report)), close(site_mix_figure(report))]
    assert len(figures[0].axes) > 1  # several functions, one panel each
    for fig in figures:
        for ax in fig.axes:
            legend = ax.get_legend()
            for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True):
                name, color = text.get_text(), mcolors.to_rgba(handle.get_facecolor())
                assert seen.setdefault(name, color) == color, name  # the same colour in every panel
                assert color == mcolors.to_rgba(colors[name])
    assert len(set(seen.values())) == len(seen)  # and no colour stands for two backends
