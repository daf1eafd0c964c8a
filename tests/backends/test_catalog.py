"""Catalog loading: validation errors name the file and field; unavailable backends are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefmp.backends.catalog import Catalog, default_catalog_path, load_catalog
from edgefmp.errors import ConfigError


def _plan(tmp_path: Path) -> None:
    """A TensorRT plan with its sidecar manifest (the plan's bytes are never read without TensorRT)."""
    from edgefmp.backends.manifest import Manifest, Postprocess, Preprocess, write_sidecar

    (tmp_path / "model.plan").write_bytes(b"not an engine")
    write_sidecar(
        Manifest(
            name="det",
            function="detect",
            task="object-detection",
            labels=["circle"],
            preprocess=Preprocess(size=(64, 64)),
            postprocess=Postprocess(kind="yolo"),
        ),
        tmp_path / "model.plan",
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_bundled_catalog_opens() -> None:
    with Catalog.open(load_catalog(default_catalog_path())) as catalog:
        assert set(catalog.functions) == {"detect", "verify", "classify", "vqa", "answer"}


def test_relative_model_paths_resolve_against_the_catalog_folder(tmp_path: Path) -> None:
    spec = load_catalog(_write(tmp_path, "functions:\n  detect:\n    - {name: a, kind: classical, model: m/x.onnx}\n"))
    assert spec.functions["detect"][0].resolve("m/x.onnx") == tmp_path.resolve() / "m" / "x.onnx"


def test_backend_that_cannot_run_here_is_skipped(tmp_path: Path) -> None:
    _plan(tmp_path)
    text = """
functions:
  detect:
    - {name: cv, kind: classical, options: {detector: shapes}}
    - {name: trt, kind: tensorrt, model: model.plan}
"""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here; the skip path is for machines without it")
    with Catalog.open(load_catalog(_write(tmp_path, text))) as catalog:
        assert [b.name for b in catalog.backends("detect")] == ["cv"]


def test_function_with_no_runnable_backend_is_an_error(tmp_path: Path) -> None:
    _plan(tmp_path)
    text = "functions:\n  detect:\n    - {name: trt, kind: tensorrt, model: model.plan}\n"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here")
    with pytest.raises(ConfigError, match="no backend of function 'detect' can run"):
        Catalog.open(load_catalog(_write(tmp_path, text)))


def test_missing_catalog_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read the catalog: .*expected a catalog YAML such as"):
        load_catalog(tmp_path / "nope.yaml")


def test_a_catalog_that_is_not_text_is_named_with_what_was_expected(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42\xff\xfe\x80")
    with pytest.raises(ConfigError, match=r"clip.mp4: not a catalog: it is not UTF-8 text"):
        load_catalog(video)


def test_accuracy_prior_is_a_share_and_reaches_the_policy(tmp_path: Path) -> None:
    bad = _write(tmp_path, "functions:\n  detect:\n    - {name: cv, kind: classical, accuracy: 93}\n")
    with pytest.raises(ConfigError, match=r"catalog.yaml.*accuracy"):
        load_catalog(bad)
    good = _write(tmp_path, "functions:\n  detect:\n    - {name: cv, kind: classical, accuracy: 0.93}\n")
    from edgefmp.program import compile_program
    from edgefmp.runtime.executor import Executor

    program = compile_program("def execute_command(image):\n    return image.exists('circle')\n")
    with Catalog.open(load_catalog(good)) as catalog:
        executor = Executor(program, catalog, policy="static:0")
        site = executor.site_info(next(iter(program.sites)), "detect")
        assert site.backends[0].accuracy == 0.93
