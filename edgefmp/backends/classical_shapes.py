"""Find coloured geometric shapes (circle, rectangle, triangle in 8 colours) with OpenCV alone.

The cheapest tier of the shapes catalog: no weights, a few milliseconds a frame. It works on
easy-VQA's images (one shape on a flat light background) and on camera-like scenes of such
shapes (uneven light, texture, noise, blur, low light):

1. Background: a smooth colour surface (a low-order polynomial per channel) fitted robustly,
   so a lighting gradient or vignette is background, and shapes, as outliers, are not.
2. Foreground: pixels far from that surface, relative to the measured noise, with hysteresis
   (seeds at a high threshold grow through a low one) so texture does not make blobs.
3. Each blob is re-cut at half its own contrast (where an anti-aliased edge really is), then
   classified: shape by how it fills its minimum-area rectangle and enclosing triangle, colour
   by the nearest palette colour allowing for brightness (shapes darken with the light).
Confidences come from how clearly each blob stands out and how close it is to its prototype.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "teal": (0, 128, 128),
    "brown": (165, 42, 42),
    "gray": (128, 128, 128),
    "black": (0, 0, 0),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "rectangle", "triangle")

# (fill of the min-area rectangle, fill of the min enclosing triangle) of ideal shapes.
_PROTOTYPES = np.array([[np.pi / 4, 0.605], [1.0, 0.5], [0.5, 1.0]], np.float32)
_SHAPE_TEMPERATURE = 0.06
_COLOR_TEMPERATURE = 25.0
_NOMINAL_BACKGROUND = 150.0  # typical luminance of a lit background; darker means low light
_GRID = 48  # the background surface is fitted on at most this many cells a side


@dataclass(frozen=True)
class Shape:
    """One found shape: box in pixels (x1, y1, x2, y2), best labels and their probabilities."""

    box: tuple[float, float, float, float]
    shape: str
    color: str
    shape_probs: dict[str, float]
    color_probs: dict[str, float]
    strength: float  # how clearly the blob stands out of the background, in [0, 1]
    area: float

    @property
    def label(self) -> str:
        return f"{self.color} {self.shape}"

    def prob(self, word: str) -> float:
        """Probability that this shape is `word` (a colour or a shape name)."""
        return self.color_probs.get(word, self.shape_probs.get(word, 0.0))


_PALETTE = np.asarray(list(PALETTE.values()), np.float32)  # (8, 3)
_PALETTE_N2 = (_PALETTE * _PALETTE).sum(axis=1)  # |p|^2, 0 for black
_PALETTE_DIV = np.maximum(_PALETTE_N2, 1.0)
_SUM3 = np.ones((1, 3), np.float32)  # cv2.transform kernels: channel sum and channel mean
_MEAN3 = np.full((1, 3), 1.0 / 3.0, np.float32)
_K3 = np.ones((3, 3), np.uint8)
_K5 = np.ones((5, 5), np.uint8)
_SQUARES = {r: np.ones((2 * r + 1, 2 * r + 1), np.uint8) for r in range(1, 5)}
# Per-pixel work goes through OpenCV or one vectorised numpy expression; numpy reductions over a
# short last axis (a colour triple) are slow, so channel sums use cv2.transform instead.


def _softmax_neg_list(d: list[float], temperature: float) -> list[float]:
    """Softmax of -d / temperature, for a short list: plain Python (numpy's per-call overhead
    would dominate)."""
    low = min(d)
    e = [math.exp(-(x - low) / temperature) for x in d]
    total = sum(e)
    return [x / total for x in e]


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)  # the first of equals, as np.argmax


def _median(values: np.ndarray, near: float | None = None, width: float = 0.0) -> float:
    """np.median of a 1-d array by a partial sort (np.median adds checks that cost more). Given
    a guess `near`, only the values within `width` of it are sorted when the median is there."""
    n = len(values)
    lo_rank, hi_rank = (n - 1) // 2, n // 2  # the middle value, or the two middle values
    if near is not None:
        below = int(np.count_nonzero(values < near - width))
        band = values[(values >= near - width) & (values <= near + width)]
        if below <= lo_rank and below + len(band) > hi_rank:
            values, lo_rank, hi_rank = band, lo_rank - below, hi_rank - below
    part = np.partition(values, [lo_rank, hi_rank] if hi_rank != lo_rank else lo_rank)
    return 0.5 * (float(part[lo_rank]) + float(part[hi_rank]))


def _row_norm(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of an (N, 3) array."""
    out: np.ndarray = np.sqrt(np.einsum("ij,ij->i", x, x))
    return out


def _design(h: int, w: int, degree: int) -> np.ndarray:
    """Polynomial terms u^i v^j (i + j <= degree) of every cell centre of an h x w grid."""
    u = ((np.arange(w, dtype=np.float32) + 0.5) / w - 0.5)[None, :]
    v = ((np.arange(h, dtype=np.float32) + 0.5) / h - 0.5)[:, None]
    cols = [(u**i * v**j).reshape(-1) for i in range(degree + 1) for j in range(degree + 1 - i)]
    return np.stack(cols, axis=1).astype(np.float32)


@lru_cache(maxsize=16)
def _design_products(h: int, w: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """_design as float64 (N, k), and each cell's outer product of its terms (N, k * k): a pure
    function of the grid's size, cached, read-only."""
    a = _design(h, w, degree).astype(np.float64)
    aa = (a[:, :, None] * a[:, None, :]).reshape(len(a), -1)
    a.flags.writeable = aa.flags.writeable = False
    return a, aa


def _labels_fit_16u(h: int, w: int) -> bool:
    """Whether 8-connected component labels of an h x w mask always fit 16 bits."""
    return ((h + 1) // 2) * ((w + 1) // 2) < 65535


def _components(mask: np.ndarray, labels: np.ndarray | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """cv2.connectedComponentsWithStats (8-connected) of a 0/1 uint8 mask: count, labels, stats.
    16-bit labels where they cannot overflow: the same result, several times faster. `labels`:
    an optional output buffer."""
    ltype = cv2.CV_16U if _labels_fit_16u(*mask.shape) else cv2.CV_32S
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, labels, connectivity=8, ltype=ltype)
    return n, labels, stats


def _fit_surface(img: np.ndarray) -> tuple[np.ndarray, float]:
    """The background surface of `img` (float32 RGB) on a coarse grid, and the spread of the
    background pixels around it; see fit_background."""
    h, w = img.shape[:2]
    gh, gw = max(2, min(h, _GRID * h // max(h, w))), max(2, min(w, _GRID * w // max(h, w)))
    grid = cv2.resize(img, (gw, gh), interpolation=cv2.INTER_AREA)
    small = grid.reshape(-1, 3)
    degree = 1 if min(h, w) < 100 else 3
    a, aa = _design_products(gh, gw, degree)
    border = np.concatenate([grid[[0, -1]].reshape(-1, 3), grid[:, [0, -1]].reshape(-1, 3)])
    centre = np.asarray([_median(border[:, c]) for c in range(3)], np.float32)
    r = _row_norm(small - centre)
    spread = _median(_row_norm(border - centre))
    inliers = r <= max(20.0, 3.0 * spread)
    # Least squares by the normal equations (at most 10 unknowns) from each cell's share of A'A
    # and A'y, so that each reweighting costs two small matrix products and a tiny solve.
    k = a.shape[1]
    small_t = small.T.astype(np.float64)  # (3, N)
    ridge = 1e-9 * np.eye(k)
    for _ in range(4):
        if np.count_nonzero(inliers) < k * 3:
            inliers = r <= np.percentile(r, 50)
        weights = inliers.astype(np.float64)
        ok, coef = cv2.solve(
            (weights @ aa).reshape(k, k) + ridge, ((small_t * weights) @ a).T, flags=cv2.DECOMP_CHOLESKY
        )
        if not ok:  # degenerate inliers (all on a line, say): least squares on them directly
            coef = np.linalg.lstsq(a[inliers], small[inliers].astype(np.float64), rcond=None)[0]
        fitted = a @ coef
        r = _row_norm(small - fitted)
        sigma = max(1.4826 * _median(r[inliers]), 1.0)
        previous, inliers = inliers, r <= max(2.5 * sigma, 6.0)
        if np.array_equal(inliers, previous):
            break  # a fixed point: further rounds would repeat this one exactly
    return fitted.reshape(gh, gw, 3).astype(np.float32), sigma


def fit_background(img: np.ndarray) -> tuple[np.ndarray, float]:
    """A smooth background surface for `img` (float32 RGB) and the robust spread of the
    background pixels around it (texture plus noise)."""
    grid, sigma = _fit_surface(img)
    # A smooth surface: evaluating it on the grid and resizing is exact enough and much faster.
    h, w = img.shape[:2]
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR), sigma


_NOISE_SCALE = 1.4826 * 1.6  # MAD to sigma, and the detail image's share of the noise
_NOISE_LEVELS = (10.0, 4.0, 1.5)  # above these noise levels, _denoise filters harder


def _detail(
    img: np.ndarray,
    out: np.ndarray | None = None,
    spare: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Absolute fine detail (gray minus its blur) of an RGB image: noise, and edges. Returns
    also a spare float32 buffer of the same size (the blur), for reuse. `out` and `spare`:
    optional (h, w) float32 buffers to write into."""
    gray = cv2.transform(np.asarray(img, np.float32), _MEAN3, dst=out)
    spare = cv2.GaussianBlur(gray, (0, 0), 1.0, dst=spare)
    return cv2.absdiff(gray, spare, dst=gray), spare


def _noise_sigma(img: np.ndarray) -> float:
    """Per-pixel noise level from the median absolute deviation of a fine detail image."""
    return _NOISE_SCALE * _median(_detail(img)[0].reshape(-1))


def _noise_level(detail: np.ndarray) -> float:
    """_noise_sigma rounded down to the nearest of _NOISE_LEVELS (0 below them all), from the
    _detail image: all _denoise needs, and counting pixels is cheaper than finding a median."""
    detail = detail.reshape(-1)
    n = len(detail)
    for level in _NOISE_LEVELS:
        c = level / _NOISE_SCALE
        below = n - int(np.count_nonzero(detail > c))  # pixels <= c
        if below <= (n - 1) // 2:  # the (upper) middle value, so the median, is above c
            return level + 1.0
        if n % 2 == 0 and below == n // 2:  # the two middle values straddle c
            a, b = float(detail[detail <= c].max()), float(detail[detail > c].min())
            if _NOISE_SCALE * 0.5 * (a + b) > level:
                return level + 1.0
    return 0.0


def _denoise(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma > 10:
        return cv2.medianBlur(cv2.medianBlur(image, 5), 5)
    if sigma > 4:
        return cv2.medianBlur(image, 5)
    if sigma > 1.5:
        return cv2.medianBlur(image, 3)
    return image


def _background_gain(grid: np.ndarray, size: tuple[int, int], spare: np.ndarray | None = None) -> float:
    """How much darker than a nominally lit background the background surface (`grid`, to be
    resized to `size` = (w, h)) is: 1 when lit, up to 10. `spare`: a float32 buffer of that size."""
    lum = cv2.transform(grid, _MEAN3)
    # The full-size surface interpolates the grid, so it lies within the grid's range.
    if float(lum.min()) >= _NOMINAL_BACKGROUND:
        return 1.0
    if float(lum.max()) * 10.0 <= _NOMINAL_BACKGROUND:
        return 10.0
    full = cv2.resize(lum, size, dst=spare, interpolation=cv2.INTER_LINEAR).reshape(-1)
    if len(full) < 4 * lum.size:
        bg_lum = _median(full)
    else:  # the grid's median is a close guess: sort only the values near it
        bg_lum = _median(full, near=_median(lum.reshape(-1)), width=0.005 * float(lum.max() - lum.min()) + 0.2)
    return min(max(_NOMINAL_BACKGROUND / max(bg_lum, 1.0), 1.0), 10.0)


def _gradient(rgb: np.ndarray) -> np.ndarray:
    """Colour gradient magnitude (Sobel, scaled to a per-pixel step) of a float32 RGB image."""
    gx, gy = cv2.Sobel(rgb, cv2.CV_32F, 1, 0), cv2.Sobel(rgb, cv2.CV_32F, 0, 1)
    out: np.ndarray = cv2.sqrt(cv2.transform(gx * gx + gy * gy, _SUM3)) / 8.0
    return out


def _shape_features(mask: np.ndarray, area: float | None = None) -> tuple[float, float]:
    mask = mask.view(np.uint8) if mask.dtype == bool else mask
    cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cnt = max(cnts, key=cv2.contourArea)
    area = float(cv2.countNonZero(mask)) if area is None else float(area)
    (_, (rw, rh), _) = cv2.minAreaRect(cnt)
    rect_fill = area / max(rw * rh + rw + rh + 1.0, 1.0)  # pixel areas count the border
    tri_area, _ = cv2.minEnclosingTriangle(cnt.astype(np.float32))
    perim = cv2.arcLength(cnt, True)
    tri_fill = area / max(float(tri_area) + 0.5 * perim + 1.0, 1.0)
    return min(rect_fill, 1.0), min(tri_fill, 1.0)


def _color_probs(rgb: np.ndarray | list[float], gain: float) -> list[float]:
    """Distance of `rgb` to each palette colour scaled within a plausible brightness range,
    turned into probabilities (in PALETTE's order). Plain Python: 8 colours x 3 channels."""
    r, g, b = (float(v) for v in rgb)
    lo, hi = 0.55 / gain, 1.25
    dist = []
    for pr, pg, pb in PALETTE.values():
        n2 = pr * pr + pg * pg + pb * pb
        s = 0.0 if n2 == 0 else min(max((r * pr + g * pg + b * pb) / n2, lo), hi)
        dist.append(math.sqrt((r - s * pr) ** 2 + (g - s * pg) ** 2 + (b - s * pb) ** 2))
    return _softmax_neg_list(dist, _COLOR_TEMPERATURE / max(gain, 1.0) ** 0.5)


def _pixel_colors(rgb: np.ndarray, gain: float) -> np.ndarray:
    """The nearest palette colour (index) of each pixel of an (N, 3) array, brightness-aware."""
    dot = rgb @ _PALETTE.T  # (N, 8)
    s = dot / _PALETTE_DIV
    np.maximum(s, 0.55 / gain, out=s)
    np.minimum(s, 1.25, out=s)
    # |rgb - s p|^2 = |rgb|^2 + s (s |p|^2 - 2 rgb.p): |rgb|^2 is the same for every colour,
    # and black (p = 0) scores 0 whatever its scale s.
    d = s * _PALETTE_N2
    d -= 2.0 * dot
    d *= s
    return np.asarray(d.argmin(axis=1), np.int32)


def _split_by_color(region: np.ndarray, rgb: np.ndarray, gain: float, min_area: float) -> list[np.ndarray]:
    """Touching shapes of different colours merge into one blob; split it where the colour
    changes. Returns the region itself when it holds one colour."""
    if np.count_nonzero(region) < 2 * min_area:  # no room for two pieces of min_area
        return [region]
    colors = _pixel_colors(rgb[region], gain)
    floor = max(min_area, 0.15 * float(len(colors)))
    counts = np.bincount(colors, minlength=len(PALETTE))
    # Opening only removes pixels, so a colour with fewer than `floor` pixels yields no piece,
    # and one with fewer than 2 x floor at most one.
    counts_list = counts.tolist()
    wanted = [c for c, count in enumerate(counts_list) if count >= floor]
    if sum(int(counts_list[c] // floor) for c in wanted) < 2:
        return [region]
    labels = np.full(region.shape, -1, np.int8)
    labels[region] = colors
    candidates = []
    for c in wanted:
        part = cv2.morphologyEx((labels == c).view(np.uint8), cv2.MORPH_OPEN, _K3)
        n, lab, stats = _components(part)
        candidates += [
            (lab, k, int(stats[k, cv2.CC_STAT_AREA])) for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= floor
        ]
    if len(candidates) < 2:
        return [region]
    pieces = [m for m, area in ((lab == k, area) for lab, k, area in candidates) if _solid(m, area)]
    return pieces if len(pieces) >= 2 else [region]


def _solid(mask: np.ndarray, area: float | None = None, min_solidity: float = 0.75) -> bool:
    """A shape fills most of its convex hull; the blurred rim around a shape (a ring) does not."""
    m = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    cnts, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.concatenate(cnts)))
    area = float(cv2.countNonZero(m)) if area is None else float(area)
    return area >= min_solidity * (hull + 1.0)


def _edge_sharpness(mask: np.ndarray, grad: np.ndarray, contrast: float) -> float:
    """Mean gradient on the mask's boundary relative to its contrast: a solid shape has a
    sharp edge (about 0.3 and more), a blob of background texture a gentle slope (about 0.1)."""
    mask = mask.view(np.uint8) if mask.dtype == bool else mask
    rim = cv2.subtract(mask, cv2.erode(mask, _K3))
    if not cv2.countNonZero(rim):
        return 0.0
    return float(cv2.mean(grad, mask=rim)[0]) / max(contrast, 1e-3)


class Workspace:
    """Full-frame buffers that find_shapes reuses from call to call: a fresh large array costs a
    page fault per 4 KiB on first touch, a good part of a call's time. Keep one per caller (a
    backend instance); it holds the buffers of the last `max_sizes` image sizes. Thread-safe:
    a call that finds it in use by another thread allocates its own."""

    def __init__(self, max_sizes: int = 2) -> None:
        self.max_sizes = max_sizes
        self._lock = threading.Lock()
        self._sizes: OrderedDict[tuple[int, int], dict[str, np.ndarray]] = OrderedDict()

    @contextmanager
    def buffers(self, h: int, w: int) -> Iterator[dict[str, np.ndarray] | None]:
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            bufs = self._sizes.pop((h, w), None)
            if bufs is None:
                bufs = {
                    "rgb": np.empty((h, w, 3), np.float32),
                    "bg": np.empty((h, w, 3), np.float32),
                    "gray": np.empty((h, w), np.float32),
                    "spare": np.empty((h, w), np.float32),
                    "labels": np.empty((h, w), np.uint16 if _labels_fit_16u(h, w) else np.int32),
                }
            self._sizes[(h, w)] = bufs
            while len(self._sizes) > self.max_sizes:
                self._sizes.popitem(last=False)
            yield bufs
        finally:
            self._lock.release()


def find_shapes(image: np.ndarray, min_area_frac: float = 0.0015, workspace: Workspace | None = None) -> list[Shape]:
    """Every shape in an RGB uint8 image, largest first. A `workspace` makes repeated calls
    cheaper (see Workspace); results are the same with or without."""
    h, w = image.shape[:2]
    if workspace is None or h * w < 128 * 128:  # small images: their arrays come cheap
        return _find_shapes(image, min_area_frac, {})
    with workspace.buffers(h, w) as bufs:
        return _find_shapes(image, min_area_frac, bufs or {})


def _find_shapes(image: np.ndarray, min_area_frac: float, bufs: dict[str, np.ndarray]) -> list[Shape]:
    h, w = image.shape[:2]
    # Full-frame temporaries are few and, given buffers, reused (dst= of None allocates).
    as_float = bufs.get("rgb")
    if as_float is None or image.ndim != 3 or image.shape[2] != 3:
        as_float = image.astype(np.float32)
    else:
        np.copyto(as_float, image, casting="unsafe")
    gray, spare = _detail(as_float, bufs.get("gray"), bufs.get("spare"))
    level = _noise_level(gray)
    denoised = _denoise(image, level) if level else image
    clean = as_float
    if level:
        if clean.shape == denoised.shape:
            np.copyto(clean, denoised, casting="unsafe")
        else:
            clean = denoised.astype(np.float32)
    as_bytes = denoised if denoised.dtype == np.uint8 else None  # for exact medians by histogram
    grid, spread = _fit_surface(clean)
    # The background, then clean minus it, then its square.
    d = cv2.resize(grid, (w, h), dst=bufs.get("bg"), interpolation=cv2.INTER_LINEAR)
    cv2.subtract(clean, d, dst=d)
    cv2.multiply(d, d, dst=d)
    dist2 = cv2.transform(d, _SUM3, dst=spare)  # squared distance to the background
    lo = max(2.5 * spread, 15.0)
    hi = max(5.0 * spread, 35.0)
    low_mask: np.ndarray = (dist2 > lo * lo).view(np.uint8)
    if min(h, w) >= 100:
        low_mask = cv2.morphologyEx(low_mask, cv2.MORPH_OPEN, _K3)
    n, labels, stats = _components(low_mask, bufs.get("labels"))
    min_area = max(10.0, min_area_frac * h * w)
    big = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_area]
    if not big:
        return []
    gain = _background_gain(grid, (w, h), gray)  # the detail image is no longer needed
    found: list[Shape] = []
    for k in big:
        x, y, bw, bh, _ = (int(v) for v in stats[k])
        x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(w, x + bw + 3), min(h, y + bh + 3)
        win = (slice(y0, y1), slice(x0, x1))
        region = labels[win] == k
        rgb = clean[win]
        rgb8 = None if as_bytes is None else as_bytes[win]
        pieces = _split_by_color(region, rgb, gain, min_area)
        diff = cv2.sqrt(dist2[win])
        # Sobel on the window is the full image's Sobel wherever a piece can reach: pieces
        # stay 3 pixels inside the window, or it ends where the image does.
        grad: list[np.ndarray] = []
        for i, piece in enumerate(pieces):
            others = None
            if len(pieces) > 1:
                others = np.zeros_like(region)
                for j, other in enumerate(pieces):
                    if j != i:
                        others |= other
            shape = _classify_piece(piece, others, diff, grad, rgb, rgb8, (x0, y0), lo, hi, gain, min_area)
            if shape is not None:
                found.append(shape)
    found.sort(key=lambda s: -s.area)
    return found


def _percentile(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) (linear interpolation) by a partial sort."""
    pos = q / 100.0 * (len(values) - 1)
    i = int(pos)
    j = min(i + 1, len(values) - 1)
    part = np.partition(values, [i, j]) if j != i else np.partition(values, i)
    a, b, t = float(part[i]), float(part[j]), pos - i
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)


def _classify_piece(
    piece: np.ndarray,
    others: np.ndarray | None,
    diff: np.ndarray,
    grad: list[np.ndarray],
    rgb: np.ndarray,
    rgb8: np.ndarray | None,
    origin: tuple[int, int],
    lo: float,
    hi: float,
    gain: float,
    min_area: float,
) -> Shape | None:
    """Re-cut a blob at half its own contrast (where an anti-aliased edge really is), check it
    is a solid shape, and name its shape and colour. `grad` holds the window's gradient image
    once computed (only faint blobs need it); `rgb8` is `rgb` as uint8, when it is one."""
    peak = _percentile(diff[piece], 90)
    near: np.ndarray = cv2.dilate(piece.view(np.uint8), _K5)
    if others is not None:
        near[others] = 0
    cut = (diff > 0.5 * peak).view(np.uint8) & near
    mask, area = _largest_component(cut)
    if area < min_area * 0.5:
        return None
    sharp = 1.0
    if peak < hi:
        if not grad:
            grad.append(_gradient(rgb))
        sharp = _edge_sharpness(mask, grad[0], peak)
        if sharp < 0.2:
            return None
    bx, by, bw, bh = cv2.boundingRect(mask)
    x0, y0 = origin
    box = (float(bx + x0), float(by + y0), float(bx + bw + x0), float(by + bh + y0))
    rect_fill, tri_fill = _shape_features(mask, area)
    sp = _softmax_neg_list(
        [math.hypot(rect_fill - pr, tri_fill - pt) for pr, pt in _PROTOTYPES.tolist()], _SHAPE_TEMPERATURE
    )
    cp = _color_probs(_median_color(rgb, rgb8, _interior(mask)), gain)
    strength = min(max((peak - lo) / max(hi - lo, 1e-3), 0.0), 1.0) ** 0.5
    if peak < hi:
        strength = min(strength, min(max(sharp / 0.4, 0.0), 1.0))
    return Shape(
        box=box,
        shape=SHAPES[_argmax(sp)],
        color=COLORS[_argmax(cp)],
        shape_probs=dict(zip(SHAPES, sp, strict=True)),
        color_probs=dict(zip(COLORS, cp, strict=True)),
        strength=max(strength, 0.05),
        area=float(area),
    )


def _median_color(rgb: np.ndarray, rgb8: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """Per-channel median of the pixels under a 0/1 uint8 mask (np.median's value), from
    histograms when the pixels are bytes."""
    if rgb8 is None:
        return np.asarray(np.median(rgb[mask > 0], axis=0), np.float32)
    out = []
    for c in range(3):
        counts = cv2.calcHist([rgb8], [c], mask, [256], [0, 256]).reshape(-1).cumsum()
        n = int(counts[-1])
        # the values of ranks (n - 1) // 2 and n // 2: the middle one, or the middle two
        lower, upper = np.searchsorted(counts, [(n - 1) // 2, n // 2], side="right").tolist()
        out.append(0.5 * (lower + upper))
    return np.asarray(out, np.float32)


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest 8-connected component of a 0/1 uint8 mask, and its area."""
    n, labels, stats = _components(mask)
    if n <= 2:
        return mask, int(stats[1, cv2.CC_STAT_AREA]) if n == 2 else 0
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out: np.ndarray = (labels == k).view(np.uint8)
    return out, int(stats[k, cv2.CC_STAT_AREA])


def _interior(mask: np.ndarray) -> np.ndarray:
    """The mask shrunk away from its anti-aliased edge, but never to nothing."""
    r = min(max(min(mask.shape) // 10, 1), 4)
    core = cv2.erode(mask, _SQUARES[r])
    return core if cv2.countNonZero(core) >= 4 else mask
