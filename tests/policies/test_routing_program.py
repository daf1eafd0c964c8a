"""The routing baseline's one-call program goes through the `answer` function.

Run for real: the compiled program, the executor, the catalogs (the bundled OpenCV one and the
committed zoo when built), RoutingPolicy and its learning on composed scenes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.catalog import Catalog, default_catalog_path, load_catalog
from edgefmp.errors import PolicyError, ProgramError
from edgefmp.frame import Frame
from edgefmp.policies.routing import ROUTING_FUNCTION, RoutingPolicy, routing_function, routing_program
from edgefmp.program import compile_program
from edgefmp.runtime.executor import Executor
from edgefmp.scenes import Scene, compose_scene, load_shape_pool

ZOO_CATALOG = Path(__file__).resolve().parents[2] / "models" / "catalog.yaml"
QUESTION = "Is there a red circle?"


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    pool = load_shape_pool("test", limit=200)
    rng = np.random.default_rng(2)
    return [compose_scene(rng, pool, n_objects=(2, 4)) for _ in range(12)]


def _truth(scene: Scene) -> str:
    return "yes" if any((o.color, o.shape) == ("red", "circle") for o in scene.objects) else "no"


def test_routing_program_has_one_site_of_the_answer_function() -> None:
    program = compile_program(routing_program(QUESTION))
    (site,) = program.sites.values()
    assert (site.method, site.function) == ("answer", ROUTING_FUNCTION) == ("answer", "answer")


def test_routing_function_prefers_answer_and_falls_back_to_vqa(caplog: pytest.LogCaptureFixture) -> None:
    assert routing_function(["detect", "vqa", "answer"]) == "answer"
    with caplog.at_level(logging.WARNING, logger="edgefmp.policies.routing"):
        assert routing_function(["detect", "vqa"]) == "vqa"
    assert "no 'answer' function" in caplog.text
    (site,) = compile_program(routing_program(QUESTION, "vqa")).sites.values()
    assert (site.method, site.function) == ("query", "vqa")
    with pytest.raises(PolicyError, match="through function 'detect'"):
        routing_program(QUESTION, "detect")


def test_answer_must_be_called_directly() -> None:
    with pytest.raises(ProgramError, match="must be called directly"):
        compile_program("def execute_command(image):\n    f = image.answer\n    return f('Is there a cat?')\n")


def _run(catalog: Catalog, scenes: list[Scene], policy: RoutingPolicy) -> list[tuple[str, str, str]]:
    """(backend, answer, truth) per frame, learning from each frame's label as the bench does."""
    executor = Executor(compile_program(routing_program(QUESTION)), catalog, policy)
    out = []
    for i, scene in enumerate(scenes):
        trace = executor.run_frame(Frame(f"f{i}", float(i), scene.image), i)
        assert trace.error is None, trace.error
        (call,) = trace.calls
        assert call.function == "answer" and call.site.startswith("answer@")
        policy.update(trace, 1.0 if trace.answer == _truth(scene) else 0.0)
        out.append((str(call.backend), str(trace.answer), _truth(scene)))
    return out


def test_demo_catalog_routes_to_opencv_and_answers_right(scenes: list[Scene]) -> None:
    with Catalog.open(load_catalog(default_catalog_path()), warmup=False) as catalog:
        rows = _run(catalog, scenes, RoutingPolicy())
    assert {backend for backend, _, _ in rows} == {"shapes-cv"}
    assert sum(answer == truth for _, answer, truth in rows) >= len(rows) - 1


@pytest.mark.skipif(not ZOO_CATALOG.is_file(), reason="models/ not built (edgefmp zoo build)")
def test_zoo_routing_chooses_among_whole_frame_answerers(scenes: list[Scene]) -> None:
    """On the zoo the one site's choices are the OpenCV tier and the four detector answerers,
    and whichever the bandit picks, the answer is about the whole frame."""
    with Catalog.open(load_catalog(ZOO_CATALOG), warmup=False) as catalog:
        names = [b.name for b in catalog.backends("answer")]
        rows = _run(catalog, scenes, RoutingPolicy(alpha=5.0))
    assert names[0] == "shapes-cv" and len(names) == 5
    assert {backend for backend, _, _ in rows} <= set(names)
    assert len({backend for backend, _, _ in rows}) >= 2, "exploration never left the first choice"
    assert sum(answer == truth for _, answer, truth in rows) >= len(rows) - 2
