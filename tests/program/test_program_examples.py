"""The example programs are accepted and answer correctly against the fake caller."""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from edgefmp.backends.catalog import Catalog, load_catalog
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.program import load_program
from edgefmp.runtime.executor import Executor

from .conftest import EXAMPLES, FakeCaller, Scene, Shape

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.py"))
ROOT = EXAMPLES.parents[1]


def test_there_are_examples() -> None:
    assert len(EXAMPLE_FILES) >= 5


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_example_is_accepted_and_its_sites_point_at_their_calls(path: Path) -> None:
    compiled = load_program(path)
    assert compiled.sites, f"{path.name} makes no neural call"
    lines = compiled.source.splitlines()
    for site_id, site in compiled.sites.items():
        assert site_id == f"{site.method}@{site.line}:{site.col}"
        assert lines[site.line - 1][site.col :].startswith(site.method + "(")


def run(name: str, scene: Scene) -> object:
    return load_program(EXAMPLES / name).run(scene.image(), FakeCaller(scene))


def test_is_there_a_red_circle(scene: Scene) -> None:
    assert run("is_there_a_red_circle.py", scene) == "yes"
    assert run("is_there_a_red_circle.py", Scene([Shape("circle", "blue", (5, 5, 30, 30))])) == "no"


def test_count_blue_shapes(scene: Scene) -> None:
    assert run("count_blue_shapes.py", scene) == 2


def test_shape_left_of_circle(scene: Scene) -> None:
    assert run("shape_left_of_circle.py", scene) == "nothing"
    scene.shapes.append(Shape("rectangle", "green", (0, 90, 8, 100)))
    scene.shapes.append(Shape("triangle", "gray", (2, 60, 30, 80)))
    assert run("shape_left_of_circle.py", scene) == "triangle"


def test_what_color_is_the_triangle(scene: Scene) -> None:
    assert run("what_color_is_the_triangle.py", scene) == "blue"


def test_what_color_falls_back_to_best_text_match(scene: Scene) -> None:
    caller = FakeCaller(scene, vqa_answer="sort of bluish")
    answer = load_program(EXAMPLES / "what_color_is_the_triangle.py").run(scene.image(), caller)
    assert answer == "blue"
    assert [request.function for _, request in caller.calls] == ["detect", "vqa", "classify"]


def test_is_circle_above_rectangle(scene: Scene) -> None:
    assert run("is_circle_above_rectangle.py", scene) == "yes"
    flipped = Scene([Shape("circle", "red", (10, 80, 40, 110)), Shape("rectangle", "blue", (60, 5, 90, 30))])
    assert run("is_circle_above_rectangle.py", flipped) == "no"


def test_read_text_demo(scene: Scene) -> None:
    assert run("read_text_demo.py", scene) == "2 words: stop here"
    assert run("read_text_demo.py", Scene([], text="Exit")) == "1 word: exit"
    assert run("read_text_demo.py", Scene([])) == "no text"


def header_catalogs(path: Path) -> list[Path]:
    """The catalogs an example's header names on its `# Catalog:` line (paths from the repo root)."""
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    named = [line for line in header if line.startswith("# Catalog: ")]
    assert len(named) == 1, f"{path.name}: its header must say which catalog it runs on ('# Catalog: PATH')"
    return [ROOT / found for found in re.findall(r"[\w./-]+\.yaml", named[0])]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_the_catalogs_an_example_names_serve_every_function_it_calls(path: Path) -> None:
    """What `edgefmp run EXAMPLE --catalog C` checks before the first frame, for every C named."""
    catalogs = header_catalogs(path)
    assert catalogs, f"{path.name}: the '# Catalog:' line names no .yaml file"
    needed = {site.function for site in load_program(path).sites.values()}
    for catalog in catalogs:
        assert catalog.is_file(), f"{path.name} names {catalog}, which does not exist"
        served = set(load_catalog(catalog).functions)
        assert needed <= served, f"{path.name}: {catalog} does not serve {sorted(needed - served)}"


def load_example_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "rapidocr_openai", ROOT / "examples" / "servers" / "rapidocr_openai.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ocr_server_url() -> Iterator[str]:
    """The example OCR server on a free local port, reading every image as 'STOP here' (the test
    machine has no RapidOCR: what is checked is the catalog, the remote backend and the server's
    handling of their requests, not the OCR model)."""
    seen: list[tuple[int, ...]] = []

    def read_text(image: np.ndarray) -> str:
        seen.append(image.shape)
        return "STOP here"

    server = load_example_server().make_server("127.0.0.1", 0, read_text)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert seen and all(len(shape) == 3 for shape in seen)


def test_read_text_demo_runs_with_the_catalog_its_header_names(ocr_server_url: str) -> None:
    program_path = EXAMPLES / "read_text_demo.py"
    (catalog_path,) = header_catalogs(program_path)
    spec = load_catalog(catalog_path)
    (ocr,) = spec.functions["ocr"]
    ocr.options["url"] = ocr_server_url
    with Catalog.open(spec, warmup=False) as catalog:
        executor = Executor(load_program(program_path), catalog, create("static:0"))
        image = np.full((48, 64, 3), 255, np.uint8)
        trace = executor.run_frame(Frame(frame_id="sign", ts=0.0, image=image))
    assert trace.error is None, trace.error
    assert trace.answer == "2 words: stop here"
    assert [(call.function, call.backend) for call in trace.calls] == [("ocr", "ocr-vlm")]
