"""The bench's remote tier serves the largest whole-frame answerer: the zoo catalog served by a
real `edgefmp serve` app, and the edge catalog rewritten by `with_remote_largest`, whose last
`answer` backend is a KServe client of it. Its answers equal the served detector answerer's run
locally, over the JPEG upload the bench uses (skipped without the built zoo in models/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.catalog import Catalog, load_catalog
from edgefmp.bench.remote import with_remote_largest
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.program import compile_program
from edgefmp.results import AnswerRequest
from edgefmp.runtime.executor import Executor
from edgefmp.scenes import compose_scene, load_shape_pool

pytest.importorskip("fastapi")
from edgefmp.serve.app import create_app  # noqa: E402
from edgefmp.serve.runner import ServerThread  # noqa: E402
from edgefmp.serve.settings import ServeSettings  # noqa: E402

ZOO_CATALOG = Path(__file__).resolve().parents[2] / "models" / "catalog.yaml"
pytestmark = pytest.mark.skipif(not ZOO_CATALOG.is_file(), reason="models/ not built (edgefmp zoo build)")
QUESTIONS = (
    "Is there a red circle?",
    "How many triangles are there?",
    "What color is the circle?",
    "Is there a blue rectangle to the left of a green circle?",
)


def test_largest_answerer_served_remotely_answers_like_it_does_locally() -> None:
    pool = load_shape_pool("test", limit=200)
    rng = np.random.default_rng(4)
    images = [compose_scene(rng, pool, n_objects=(2, 5)).image for _ in range(6)]
    spec = load_catalog(ZOO_CATALOG)
    with Catalog.open(spec, warmup=False) as served, ServerThread(create_app(served, ServeSettings())) as server:
        local = served.backends("answer")[-1]
        assert local.name == "shapedet-xl-int8"
        with Catalog.open(with_remote_largest(spec, server.url), warmup=False) as edge:
            remote = edge.backends("answer")[-1]
            assert (remote.name, remote.location) == ("shapedet-xl-int8-remote", "remote")
            for image in images:
                for question in QUESTIONS:
                    want = local.infer(AnswerRequest(image, question))
                    got = remote.infer(AnswerRequest(image, question))
                    # JPEG at quality 90 may move a box by a pixel, not an answer on these scenes
                    assert got.text == want.text, question
                    assert got.bytes_up > 0 and got.bytes_down > 0

            # and the routing program's call lands on it when the policy picks the last backend
            program = compile_program(f"def execute_command(image):\n    return image.answer({QUESTIONS[0]!r})\n")
            trace = Executor(program, edge, create("static:4")).run_frame(Frame("f0", 0.0, images[0]), 0)
            assert trace.error is None and trace.calls[0].backend == "shapedet-xl-int8-remote"
            assert trace.answer == local.infer(AnswerRequest(images[0], QUESTIONS[0])).text
