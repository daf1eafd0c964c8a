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


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """An (at most) size x size grey float32 thumbnail by strided sampling.

    A strided view touches only about size*size pixels whatever the resolution (no
    averaging, no copy of the frame), which keeps per-frame statistics in the tens of
    microseconds on a 4K frame. Images smaller than `size` keep their own size.
    """
    h, w = image.shape[:2]
    small = image[:: max(h // size, 1), :: max(w // size, 1)][:size, :size].astype(np.float32)
    if small.ndim == 3:
        return small @ _GREY
    return small


def _clip01(v: float) -> float:
    return 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)


def frame_features(frame: Frame, cache: dict[str, Any] | None = None) -> np.ndarray:
    """Brightness, contrast, sharpness, noise, motion, resolution of `frame` (FRAME_DIM).

    Cached in `cache[FRAME_FEATURES_KEY]` (keyed by frame id), so every call of a frame pays
    once; the thumbnail goes to `cache[THUMB_KEY]` for the next frame's motion. A frame
    without an image (decode error) gives zeros.
    """
    if cache is None:
        cache = {}
    hit = cache.get(FRAME_FEATURES_KEY)
    if hit is not None and hit[0] == frame.frame_id:
        return hit[1]  # type: ignore[no-any-return]
    out = np.zeros(FRAME_DIM, dtype=np.float64)
    if frame.image is not None and frame.image.size:
        g = thumbnail(frame.image)
        gh, gw = g.shape
        out[0] = float(g.mean()) / 255.0
        out[1] = _clip01(float(g.std()) / 128.0)
        if gh > 2 and gw > 2:
            c4 = 4.0 * g[1:-1, 1:-1]
            lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - c4
            out[2] = _clip01(math.log1p(float(lap.var())) / _LOG_SHARP)
            # Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|, where the
            # mask M is (up to sign) twice the 4-neighbour Laplacian minus the diagonal one.
            diag = g[:-2, :-2] + g[:-2, 2:] + g[2:, :-2] + g[2:, 2:] - c4
            sigma = math.sqrt(math.pi / 2.0) / (6.0 * (gh - 2) * (gw - 2))
            out[3] = _clip01(sigma * float(np.abs(2.0 * lap - diag).sum()) / 32.0)
        prev = cache.get(PREV_THUMB_KEY)
        if isinstance(prev, np.ndarray) and prev.shape == g.shape:
            out[4] = _clip01(float(np.abs(g - prev).mean()) / 64.0)
        h, w = frame.image.shape[:2]
        out[5] = _clip01((math.log2(max(h * w, 1)) - 10.0) / 15.0)
        cache[THUMB_KEY] = g
    cache[FRAME_FEATURES_KEY] = (frame.frame_id, out)
    return out


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


def call_features(context: DecisionContext, out: np.ndarray) -> None:
    """Fill entries 7..15 of `out` from the request, earlier calls and budget pressure."""
    image = getattr(context.request, "image", None)
    frame_img = context.frame.image
    if image is not None and frame_img is not None and frame_img.size:
        area = image.shape[0] * image.shape[1] / float(frame_img.shape[0] * frame_img.shape[1])
        out[7] = _clip01(area)
    else:
        out[7] = 1.0
    out[8] = _clip01(math.log1p(_n_args(context.request)) / _LOG_ARGS)
    calls = context.calls_so_far
    out[9] = _clip01(math.log1p(len(calls)) / _LOG_CALLS)
    confs = [float(c.confidence) for c in calls if c.confidence is not None]
    last = calls[-1].confidence if calls else None
    out[10] = 0.5 if last is None else _clip01(float(last))
    out[11] = sum(confs) / len(confs) if confs else 0.5
    out[12] = _clip01(math.log1p(sum(_n_found(c) for c in calls)) / _LOG_FOUND)
    spent = sum(c.cost.latency_ms for c in calls)
    out[13] = _clip01(math.log1p(max(spent, 0.0)) / _LOG_SPENT)
    out[14] = _clip01(float(context.cache.get(PRESSURE_KEY, 0.0)))
    out[15] = 1.0 if any(c.error is not None or c.attempts for c in calls) else 0.0


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
    out = np.empty(CONTEXT_DIM, dtype=np.float64)
    out[0] = 1.0
    out[1:7] = frame_features(context.frame, context.cache)
    call_features(context, out)
    return out


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
    "frame_features",
    "thumbnail",
]
