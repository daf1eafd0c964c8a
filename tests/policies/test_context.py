"""Context features: fixed order and size, meaningful statistics, cheap caching."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.frame import Frame
from edgefmp.policies.base import BackendInfo, DecisionContext, SiteInfo
from edgefmp.policies.context import (
    CONTEXT_DIM,
    CONTEXT_FEATURES,
    FEATURES_KEY,
    FRAME_DIM,
    FRAME_FEATURES,
    PRESSURE_KEY,
    FrameMemory,
    context_features,
    frame_features,
)
from edgefmp.results import DetectRequest, LLMRequest, VQARequest
from edgefmp.trace import Attempt, CallRecord, Cost

SITE = SiteInfo("detect@1:4", "detect", (BackendInfo("s", "device"), BackendInfo("l", "remote")))
RNG = np.random.default_rng(0)


def scene(h: int = 240, w: int = 320, level: int = 128, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A blocky test scene (sharp edges) at a grey level, with optional Gaussian noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(-60, 60, size=(h // 16 + 1, w // 16 + 1, 1))
    img = level + np.kron(blocks, np.ones((16, 16, 3)))[:h, :w]
    img = img + rng.normal(0.0, noise, img.shape) if noise else img
    return np.clip(img, 0, 255).astype(np.uint8)


def blur(img: np.ndarray, k: int = 9) -> np.ndarray:
    out = img.astype(np.float64)
    for axis in (0, 1):
        out = sum(np.roll(out, s, axis=axis) for s in range(-(k // 2), k // 2 + 1)) / k
    return out.astype(np.uint8)


def ctx(image: np.ndarray, request=None, calls=None, fid: str = "f0", cache=None) -> DecisionContext:
    request = request or DetectRequest(image, ("person",))
    return DecisionContext(Frame(fid, 0.0, image), request, calls or [], [True, True], 0, cache or {})


def test_order_and_dimension_are_fixed() -> None:
    assert CONTEXT_DIM == len(CONTEXT_FEATURES) == 16
    assert CONTEXT_FEATURES[0] == "bias"
    assert FRAME_FEATURES == ("brightness", "contrast", "sharpness", "noise", "motion", "resolution")
    assert FRAME_DIM == 6
    x = context_features(SITE, ctx(scene()))
    assert x.shape == (CONTEXT_DIM,) and x.dtype == np.float64
    assert x[0] == 1.0
    assert np.all((x >= 0.0) & (x <= 1.0))


def test_frame_statistics_move_the_right_way() -> None:
    base = frame_features(Frame("a", 0, scene(level=128)))
    dark = frame_features(Frame("b", 0, scene(level=40)))
    assert dark[0] < base[0]
    flat = frame_features(Frame("c", 0, np.full((240, 320, 3), 128, np.uint8)))
    assert flat[1] == 0.0 and flat[2] == 0.0 and flat[3] == 0.0
    assert frame_features(Frame("d", 0, blur(scene())))[2] < base[2]
    noisy = frame_features(Frame("e", 0, np.clip(128 + RNG.normal(0, 10, (240, 320, 3)), 0, 255).astype(np.uint8)))
    # Immerkaer's estimate of the grey-level sigma (about 6.7 for sigma 10 per channel).
    assert 5.0 < noisy[3] * 32 < 8.5
    small = frame_features(Frame("f", 0, scene(120, 160)))
    big = frame_features(Frame("g", 0, scene(1080, 1920)))
    assert small[5] < base[5] < big[5]


def test_frame_without_image_gives_zeros() -> None:
    frame = Frame("broken", 0.0, None, error="decode failed")
    assert np.all(frame_features(frame) == 0.0)
    x = context_features(SITE, DecisionContext(frame, LLMRequest("hi"), [], [True, True]))
    assert x[0] == 1.0 and x[7] == 1.0


def test_tiny_images_do_not_warn() -> None:
    for shape in [(1, 1, 3), (2, 5, 3), (3, 3, 3)]:
        out = frame_features(Frame("t", 0, np.zeros(shape, np.uint8)))
        assert np.all(np.isfinite(out))


def test_motion_needs_the_previous_frame() -> None:
    memory = FrameMemory()
    a, b = scene(seed=1), scene(seed=2)
    c1 = ctx(a, fid="1")
    memory.prepare(c1)
    assert context_features(SITE, c1)[5] == 0.0
    memory.remember(c1)
    c2 = ctx(a, fid="2")
    memory.prepare(c2)
    assert context_features(SITE, c2)[5] == 0.0  # same picture: no motion
    memory.remember(c2)
    c3 = ctx(b, fid="3")
    memory.prepare(c3)
    assert context_features(SITE, c3)[5] > 0.1


def test_call_features_read_the_request_and_earlier_calls() -> None:
    img = scene()
    crop = img[:60, :80]
    calls = [
        CallRecord(
            "detect@1:4", "detect", "s", 0, {}, result=[{"label": "p"}] * 5, confidence=0.9, cost=Cost(latency_ms=12.0)
        ),
        CallRecord(
            "vqa@2:8",
            "vqa",
            "l",
            1,
            {},
            result="yes",
            confidence=0.3,
            cost=Cost(latency_ms=100.0),
            attempts=[Attempt("x", "timeout", Cost())],
        ),
    ]
    x = context_features(SITE, ctx(img, VQARequest(crop, "what colour is the car"), calls, cache={PRESSURE_KEY: 0.4}))
    names = dict(zip(CONTEXT_FEATURES, x, strict=True))
    assert names["crop_area"] == pytest.approx(60 * 80 / (240 * 320))
    assert names["n_args"] == pytest.approx(np.log1p(5) / np.log1p(64))
    assert names["calls_so_far"] == pytest.approx(np.log1p(2) / np.log1p(16))
    assert names["last_conf"] == pytest.approx(0.3)
    assert names["mean_conf"] == pytest.approx(0.6)
    assert names["n_found"] == pytest.approx(np.log1p(5) / np.log1p(32))
    assert names["spent"] == pytest.approx(np.log1p(112.0) / np.log1p(10000))
    assert names["pressure"] == pytest.approx(0.4)
    assert names["errors"] == 1.0
    first = context_features(SITE, ctx(img))
    assert first[9] == 0.0 and first[10] == 0.5 and first[11] == 0.5 and first[15] == 0.0


def test_frame_statistics_are_computed_once_per_frame() -> None:
    cache: dict = {}
    frame = Frame("once", 0.0, scene())
    first = frame_features(frame, cache)
    assert frame_features(frame, cache) is first  # a cache hit, not a recomputation
    assert frame_features(Frame("next", 0.0, scene()), cache) is not first


def test_logged_features_override_for_replay() -> None:
    logged = np.linspace(0, 1, CONTEXT_DIM)
    assert np.array_equal(context_features(SITE, ctx(scene(), cache={FEATURES_KEY: logged})), logged)
    with pytest.raises(ValueError, match="expected \\(16,\\)"):
        context_features(SITE, ctx(scene(), cache={FEATURES_KEY: [1.0, 2.0]}))
