"""Cheap context features for routing policies.

A policy decides on a short, fixed vector per call: statistics of the frame (computed once
per frame on a 64x64 thumbnail and cached), what the call asks (its arguments and the size
of its crop), what earlier calls of this frame returned, and how much of the frame's budget
is already spent. All entries lie roughly in [0, 1] so Bayesian linear heads need no
rescaling; the order below is a file format (traces store these vectors) and only grows at
the end, with `CONTEXT_VERSION` bumped.

`context_features(site, context)` -> float64 array of `CONTEXT_DIM`, in `CONTEXT_FEATURES`
order:

====  ===============  =============================================================
 idx   name             meaning
====  ===============  =============================================================
  0   bias             always 1.0 (intercept of linear heads)
  1   brightness       mean grey level / 255
  2   contrast         std of grey level / 128
  3   sharpness        log1p(variance of the Laplacian) / log1p(16384)
  4   noise            Immerkaer noise sigma / 32
  5   motion           mean |grey - previous grey| / 64 (0 without a previous frame)
  6   resolution       (log2(H*W) - 10) / 15  (1 kpx -> 0, 32 Mpx -> 1)
  7   crop_area        request image pixels / frame pixels (1.0 for the whole frame or
                       no image; small for crops)
  8   n_args           log1p(labels / options / question words / prompt words) / log1p(64)
  9   calls_so_far     log1p(calls already made in this frame) / log1p(16)
 10   last_conf        confidence of the previous call in this frame (0.5 when unknown)
 11   mean_conf        mean confidence of the earlier calls in this frame (0.5 when none)
 12   n_found          log1p(items the earlier calls returned, e.g. boxes) / log1p(32)
 13   spent            log1p(latency ms already spent in this frame) / log1p(10000)
 14   pressure         budget pressure in [0, 1] the policy put in
                       `cache[PRESSURE_KEY]` (0 when none)
 15   errors           1.0 if an earlier call of this frame failed or fell back
====  ===============  =============================================================

`frame_features(frame, cache)` -> float64 array of `FRAME_DIM` = entries 1..6 above.

Cost: the frame statistics read only a strided THUMB_SIZE x THUMB_SIZE sample of the frame
(whatever its resolution) and are computed once per frame, on its first call; about 35-40 us
of one CPU core at 480p, 1080p and 4K alike (most of it fetching the sampled pixels from
memory). The call features are plain Python, a few microseconds. `context_values` gives the
same vector as plain floats, which is what a policy needs for `Decision.features`.

Call-site identity is not a feature: policies key their models by `site.site_id`, which is
both cheaper and more expressive than an encoded id in a shared linear model.

Motion needs the previous frame. A stateless function cannot remember it, so the caller
passes the previous thumbnail: in `cache[PREV_THUMB_KEY]` (a runtime that keeps one cache
across frames, or a policy, copies `cache[THUMB_KEY]` there), or through a `FrameMemory`,
which a policy owns and which does that copying for it.

Replay (off-policy evaluation) has no pixels: it puts the logged vector in
`cache[FEATURES_KEY]`, and `context_features` returns that vector as is.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from edgefmp.frame import Frame
from edgefmp.policies.base import DecisionContext, SiteInfo
from edgefmp.trace import CallRecord

CONTEXT_VERSION = 1

CONTEXT_FEATURES: tuple[str, ...] = (
    "bias",
    "brightness",
    "contrast",
    "sharpness",
    "noise",
    "motion",
    "resolution",
    "crop_area",
    "n_args",
    "calls_so_far",
    "last_conf",
    "mean_conf",
    "n_found",
    "spent",
    "pressure",
    "errors",
)
CONTEXT_DIM = len(CONTEXT_FEATURES)

FRAME_FEATURES: tuple[str, ...] = CONTEXT_FEATURES[1:7]
FRAME_DIM = len(FRAME_FEATURES)

THUMB_SIZE = 64

# Keys this module reads and writes in DecisionContext.cache (a per-frame dict).
FRAME_FEATURES_KEY = "edgefmp.context.frame_features"
THUMB_KEY = "edgefmp.context.thumb"
PREV_THUMB_KEY = "edgefmp.context.prev_thumb"
PRESSURE_KEY = "edgefmp.context.pressure"
FEATURES_KEY = "edgefmp.context.features"

_LOG_SHARP = math.log1p(16384.0)
_LOG_ARGS = math.log1p(64.0)
_LOG_CALLS = math.log1p(16.0)
_LOG_FOUND = math.log1p(32.0)
_LOG_SPENT = math.log1p(10000.0)
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_K_LAPLACE = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)
_K_IMMERKAER = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], dtype=np.float32)


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """An (at most) size x size grey float32 thumbnail by strided sampling.

    A strided view touches only about size*size pixels whatever the resolution (no
    averaging, no copy of the frame), which keeps per-frame statistics in the tens of
    microseconds on a 4K frame. Images smaller than `size` keep their own size.

    RGB goes through a (3, h, w) float32 buffer: copying the strided view plane by plane
    runs numpy's inner loop along rows of `size` pixels, where `view.astype` would keep the
    view's memory order and loop over 3 channels at a time (about 3x slower); the grey
    values are the same as `view.astype(np.float32) @ _GREY`.
    """
    h, w = image.shape[:2]
    view = image[:: max(h // size, 1), :: max(w // size, 1)][:size, :size]
    if view.ndim == 3 and view.shape[2] == 3:
        gh, gw = view.shape[:2]
        planes = np.empty((3, gh, gw), dtype=np.float32)
        np.copyto(planes, view.transpose(2, 0, 1), casting="unsafe")
        return (_GREY @ planes.reshape(3, gh * gw)).reshape(gh, gw)
    small = view.astype(np.float32)
    if small.ndim == 3:
        return small @ _GREY
    return small


def _clip01(v: float) -> float:
    return 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)


# Log-scaled small counts, looked up instead of recomputed per call (the same values).
_TABLE = 64
_ARGS = [_clip01(math.log1p(n) / _LOG_ARGS) for n in range(_TABLE)]
_CALLS = [_clip01(math.log1p(n) / _LOG_CALLS) for n in range(_TABLE)]
_FOUND = [_clip01(math.log1p(n) / _LOG_FOUND) for n in range(_TABLE)]


def _frame_stats(frame: Frame, cache: dict[str, Any]) -> list[float]:
    """Entries 1..6 of the context (FRAME_DIM plain floats) of a frame with an image.

    A few OpenCV calls on the thumbnail (double-precision accumulators; the same statistics
    as the numpy formulas in the comments, up to float32 rounding): a few microseconds each
    where numpy's dozen temporaries took several times longer.
    """
    image = frame.image
    assert image is not None
    g = thumbnail(image)
    gh, gw = g.shape
    out = [0.0] * FRAME_DIM
    mean, std = cv2.meanStdDev(g)  # g.mean(), g.std()
    out[0] = float(mean[0, 0]) / 255.0
    out[1] = _clip01(float(std[0, 0]) / 128.0)
    if gh > 2 and gw > 2:
        # lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 g[1:-1, 1:-1]
        lap = cv2.filter2D(g, -1, _K_LAPLACE, borderType=cv2.BORDER_REPLICATE)[1:-1, 1:-1]
        # lap.var() from its sum and sum of squares (meanStdDev is slow on a strided view)
        n = (gh - 2) * (gw - 2)
        lap_mean = float(cv2.sumElems(lap)[0]) / n
        lap_var = max(float(cv2.norm(lap, cv2.NORM_L2SQR)) / n - lap_mean * lap_mean, 0.0)
        out[2] = _clip01(math.log1p(lap_var) / _LOG_SHARP)
        # Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|, where the
        # mask M is (up to sign) twice the 4-neighbour Laplacian minus the diagonal one.
        m = cv2.filter2D(g, -1, _K_IMMERKAER, borderType=cv2.BORDER_REPLICATE)[1:-1, 1:-1]
        sigma = math.sqrt(math.pi / 2.0) / (6.0 * (gh - 2) * (gw - 2))
        out[3] = _clip01(sigma * float(cv2.norm(m, cv2.NORM_L1)) / 32.0)
    prev = cache.get(PREV_THUMB_KEY)
    if isinstance(prev, np.ndarray) and prev.shape == g.shape and prev.dtype == g.dtype:
        # np.abs(g - prev).mean()
        out[4] = _clip01(float(cv2.norm(g, prev, cv2.NORM_L1)) / g.size / 64.0)
    elif isinstance(prev, np.ndarray) and prev.shape == g.shape:
        out[4] = _clip01(float(np.abs(g - prev).mean()) / 64.0)
    h, w = image.shape[:2]
    out[5] = _clip01((math.log2(max(h * w, 1)) - 10.0) / 15.0)
    cache[THUMB_KEY] = g
    return out


def _frame_values(frame: Frame, cache: dict[str, Any]) -> list[float]:
    """Entries 1..6 as plain floats, computed once per frame: `cache[FRAME_FEATURES_KEY]`
    holds [frame id, the floats, their array (made on first use by `frame_features`)]."""
    hit = cache.get(FRAME_FEATURES_KEY)
    if hit is not None and hit[0] == frame.frame_id:
        return hit[1]  # type: ignore[no-any-return]
    has_image = frame.image is not None and frame.image.size
    values = _frame_stats(frame, cache) if has_image else [0.0] * FRAME_DIM
    cache[FRAME_FEATURES_KEY] = [frame.frame_id, values, None]
    return values


def frame_features(frame: Frame, cache: dict[str, Any] | None = None) -> np.ndarray:
    """Brightness, contrast, sharpness, noise, motion, resolution of `frame` (FRAME_DIM).

    Cached in `cache[FRAME_FEATURES_KEY]` (keyed by frame id), so every call of a frame pays
    once; the thumbnail goes to `cache[THUMB_KEY]` for the next frame's motion. A frame
    without an image (decode error) gives zeros. The statistics come from the THUMB_SIZE
    thumbnail only, so a 1080p or 4K frame costs about what a VGA one does.
    """
    if cache is None:
        cache = {}
    values = _frame_values(frame, cache)
    entry = cache[FRAME_FEATURES_KEY]
    if entry[2] is None:
        entry[2] = np.array(values, dtype=np.float64)
    return entry[2]  # type: ignore[no-any-return]


def _n_args(request: Any) -> int:
    for key in ("labels", "options"):
        value = getattr(request, key, None)
        if value:
            return len(value)
    for key in ("question", "prompt"):
        value = getattr(request, key, None)
        if isinstance(value, str):
            return len(value.split())
    return 0


def _n_found(call: CallRecord) -> int:
    result = call.result
    if isinstance(result, (list, tuple)):
        return len(result)
    if isinstance(result, dict):
        n = result.get("n") or result.get("count")
        return int(n) if isinstance(n, (int, float)) else 0
    return 0


def _call_values(context: DecisionContext) -> list[float]:
    """Entries 7..15 (plain floats) from the request, earlier calls and budget pressure."""
    request = context.request
    image = getattr(request, "image", None)
    frame_img = context.frame.image
    if image is not None and frame_img is not None and frame_img.size:
        area = image.shape[0] * image.shape[1] / float(frame_img.shape[0] * frame_img.shape[1])
        crop = _clip01(area)
    else:
        crop = 1.0
    n_args = _n_args(request)
    args = _ARGS[n_args] if n_args < _TABLE else _clip01(math.log1p(n_args) / _LOG_ARGS)
    pressure = _clip01(float(context.cache.get(PRESSURE_KEY, 0.0)))
    calls = context.calls_so_far
    n = len(calls)
    if not n:
        return [crop, args, 0.0, 0.5, 0.5, 0.0, 0.0, pressure, 0.0]
    confs = []
    latencies = []
    found = 0
    errors = 0.0
    for c in calls:
        conf = c.confidence
        if conf is not None:
            confs.append(float(conf))
        latencies.append(c.cost.latency_ms)
        if c.result is not None:
            found += _n_found(c)
        if c.error is not None or c.attempts:
            errors = 1.0
    last = calls[-1].confidence
    spent = max(sum(latencies), 0.0)
    return [
        crop,
        args,
        _CALLS[n] if n < _TABLE else _clip01(math.log1p(n) / _LOG_CALLS),
        0.5 if last is None else _clip01(float(last)),
        sum(confs) / len(confs) if confs else 0.5,
        _FOUND[found] if 0 <= found < _TABLE else _clip01(math.log1p(found) / _LOG_FOUND),
        _clip01(math.log1p(spent) / _LOG_SPENT),
        pressure,
        errors,
    ]


def call_features(context: DecisionContext, out: np.ndarray) -> None:
    """Fill entries 7..15 of `out` from the request, earlier calls and budget pressure."""
    out[7:] = _call_values(context)


def context_values(site: SiteInfo, context: DecisionContext) -> list[float]:
    """`context_features` as a list of CONTEXT_DIM plain floats (what a policy stores in
    `Decision.features`; building the array from it costs one call)."""
    override = context.cache.get(FEATURES_KEY)
    if override is not None:
        vec = np.asarray(override, dtype=np.float64)
        if vec.shape != (CONTEXT_DIM,):
            raise ValueError(
                f"site {site.site_id}: cache[{FEATURES_KEY!r}] holds shape {vec.shape}, expected ({CONTEXT_DIM},)"
            )
        return vec.tolist()  # type: ignore[no-any-return]
    return [1.0, *_frame_values(context.frame, context.cache), *_call_values(context)]


def context_features(site: SiteInfo, context: DecisionContext) -> np.ndarray:
    """The CONTEXT_DIM feature vector of one call (see the module docstring for the order).

    `site` is accepted so site-dependent features can be added later without changing every
    caller; today the vector depends on the context only.
    """
    override = context.cache.get(FEATURES_KEY)
    if override is not None:
        vec = np.asarray(override, dtype=np.float64)
        if vec.shape != (CONTEXT_DIM,):
            raise ValueError(
                f"site {site.site_id}: cache[{FEATURES_KEY!r}] holds shape {vec.shape}, expected ({CONTEXT_DIM},)"
            )
        return vec
    return np.array(context_values(site, context), dtype=np.float64)


class FrameMemory:
    """Carries the previous frame's thumbnail into the next frame's cache, for motion.

    A policy owns one (no module-level state); call `prepare(context)` before
    `context_features`. It does nothing when the runtime already filled PREV_THUMB_KEY.
    """

    def __init__(self) -> None:
        self._frame_id: str | None = None
        self._thumb: np.ndarray | None = None
        self._prev: np.ndarray | None = None

    def prepare(self, context: DecisionContext) -> None:
        fid = context.frame.frame_id
        if fid != self._frame_id:
            self._prev, self._frame_id, self._thumb = self._thumb, fid, None
        if self._prev is not None and PREV_THUMB_KEY not in context.cache:
            context.cache[PREV_THUMB_KEY] = self._prev

    def remember(self, context: DecisionContext) -> None:
        """Keep this frame's thumbnail (after `context_features` computed it)."""
        if self._thumb is None:
            thumb = context.cache.get(THUMB_KEY)
            if isinstance(thumb, np.ndarray):
                self._thumb = thumb


__all__ = [
    "CONTEXT_DIM",
    "CONTEXT_FEATURES",
    "CONTEXT_VERSION",
    "FEATURES_KEY",
    "FRAME_DIM",
    "FRAME_FEATURES",
    "FrameMemory",
    "PRESSURE_KEY",
    "PREV_THUMB_KEY",
    "THUMB_KEY",
    "context_features",
    "context_values",
    "frame_features",
    "thumbnail",
]
