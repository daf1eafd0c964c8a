"""Composed scenes: deterministic, objects inside the frame, boxes on the pasted pixels."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.errors import ConfigError
from edgefmp.scenes import CORRUPTIONS, compose_scene, corrupt, load_shape_pool
from edgefmp.scenes.compose import overlap


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    return load_shape_pool("test", limit=80)


def test_deterministic_for_a_seed(pool) -> None:  # type: ignore[no-untyped-def]
    a = compose_scene(np.random.default_rng(5), pool)
    b = compose_scene(np.random.default_rng(5), pool)
    assert np.array_equal(a.image, b.image) and a.objects == b.objects


def test_objects_inside_not_overlapping_and_visible(pool) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for _ in range(10):
        scene = compose_scene(rng, pool, size=(192, 256), n_objects=(2, 4))
        assert scene.image.shape == (192, 256, 3) and scene.image.dtype == np.uint8
        assert 1 <= len(scene.objects) <= 4
        for i, o in enumerate(scene.objects):
            x1, y1, x2, y2 = o.box
            assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 192
            assert max(x2 - x1, y2 - y1) >= 0.1 * 192
            for other in scene.objects[i + 1 :]:
                assert overlap(o.box, other.box) <= 0.1
            assert o.label == f"{o.color} {o.shape}"


def test_bad_arguments_are_named(pool) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="n_objects"):
        compose_scene(np.random.default_rng(0), pool, n_objects=(3, 1))
    with pytest.raises(ConfigError, match="pool is empty"):
        compose_scene(np.random.default_rng(0), [])


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruptions_keep_shape_and_grow_with_severity(kind: str, pool) -> None:  # type: ignore[no-untyped-def]
    image = compose_scene(np.random.default_rng(1), pool).image
    errors = []
    for severity in (1, 3, 5):
        out = corrupt(image, kind, severity, np.random.default_rng(0))
        assert out.shape == image.shape and out.dtype == np.uint8
        errors.append(float(np.abs(out.astype(np.float32) - image).mean()))
    assert errors[0] > 0 and errors[0] < errors[2]
    assert np.array_equal(
        corrupt(image, kind, 2, np.random.default_rng(3)),
        corrupt(image, kind, 2, np.random.default_rng(3)),
    )


def test_corrupt_rejects_unknown_kind_and_severity() -> None:
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ConfigError, match="available: noise"):
        corrupt(img, "fog", 1)
    with pytest.raises(ConfigError, match="severity"):
        corrupt(img, "blur", 6)
