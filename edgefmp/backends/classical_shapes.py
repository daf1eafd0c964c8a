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

from dataclasses import dataclass

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


def _softmax_neg(d: np.ndarray, temperature: float) -> np.ndarray:
    z = -(d - d.min()) / temperature
    e = np.exp(z)
    out: np.ndarray = e / e.sum()
    return out


def _design(h: int, w: int, degree: int) -> np.ndarray:
    """Polynomial terms u^i v^j (i + j <= degree) of every cell centre of an h x w grid."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (u + 0.5) / w - 0.5, (v + 0.5) / h - 0.5
    cols = [u**i * v**j for i in range(degree + 1) for j in range(degree + 1 - i)]
    return np.stack([c.reshape(-1) for c in cols], axis=1).astype(np.float32)


def fit_background(img: np.ndarray) -> tuple[np.ndarray, float]:
    """A smooth background surface for `img` (float32 RGB) and the robust spread of the
    background pixels around it (texture plus noise)."""
    h, w = img.shape[:2]
    gh, gw = max(2, min(h, _GRID * h // max(h, w))), max(2, min(w, _GRID * w // max(h, w)))
    small = cv2.resize(img, (gw, gh), interpolation=cv2.INTER_AREA).reshape(-1, 3)
    degree = 1 if min(h, w) < 100 else 3
    a = _design(gh, gw, degree)
    border = np.concatenate([
        small.reshape(gh, gw, 3)[[0, -1]].reshape(-1, 3),
        small.reshape(gh, gw, 3)[:, [0, -1]].reshape(-1, 3),
    ])
    r = np.linalg.norm(small - np.median(border, axis=0), axis=1)
    spread = float(np.median(np.linalg.norm(border - np.median(border, axis=0), axis=1)))
    inliers = r <= max(20.0, 3.0 * spread)
    sigma = 10.0
    fitted = np.repeat(np.median(border, axis=0)[None], len(small), axis=0)
    for _ in range(4):
        if inliers.sum() < a.shape[1] * 3:
            inliers = r <= np.percentile(r, 50)
        # OpenCV's QR solve: numpy's lstsq goes through a threaded BLAS, far slower on a busy box.
        _, coef = cv2.solve(a[inliers], small[inliers], flags=cv2.DECOMP_QR)
        fitted = a @ coef
        r = np.linalg.norm(small - fitted, axis=1)
        sigma = max(1.4826 * float(np.median(r[inliers])), 1.0)
        inliers = r <= max(2.5 * sigma, 6.0)
    # A smooth surface: evaluating it on the grid and resizing is exact enough and much faster.
    grid = fitted.reshape(gh, gw, 3).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR), sigma


def _noise_sigma(img: np.ndarray) -> float:
    """Per-pixel noise level from the median absolute deviation of a fine detail image."""
    gray = img.mean(axis=2)
    detail = gray - cv2.GaussianBlur(gray, (0, 0), 1.0)
    return 1.4826 * float(np.median(np.abs(detail))) * 1.6


def _denoise(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma > 10:
        return cv2.medianBlur(cv2.medianBlur(image, 5), 5)
    if sigma > 4:
        return cv2.medianBlur(image, 5)
    if sigma > 1.5:
        return cv2.medianBlur(image, 3)
    return image


def _shape_features(mask: np.ndarray) -> tuple[float, float]:
    cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cnt = max(cnts, key=cv2.contourArea)
    area = float(mask.sum())
    (_, (rw, rh), _) = cv2.minAreaRect(cnt)
    rect_fill = area / max(rw * rh + rw + rh + 1.0, 1.0)  # pixel areas count the border
    tri_area, _ = cv2.minEnclosingTriangle(cnt.astype(np.float32))
    perim = cv2.arcLength(cnt, True)
    tri_fill = area / max(float(tri_area) + 0.5 * perim + 1.0, 1.0)
    return min(rect_fill, 1.0), min(tri_fill, 1.0)


def _color_probs(rgb: np.ndarray, gain: float) -> np.ndarray:
    """Distance of `rgb` to each palette colour scaled within a plausible brightness range."""
    out = np.empty(len(PALETTE), np.float32)
    lo, hi = 0.55 / gain, 1.25
    for i, p in enumerate(PALETTE.values()):
        pv = np.asarray(p, np.float32)
        n2 = float(pv @ pv)
        s = 0.0 if n2 == 0 else float(np.clip((rgb @ pv) / n2, lo, hi))
        out[i] = float(np.linalg.norm(rgb - s * pv))
    return _softmax_neg(out, _COLOR_TEMPERATURE / max(gain, 1.0) ** 0.5)


def _pixel_colors(rgb: np.ndarray, gain: float) -> np.ndarray:
    """The nearest palette colour (index) of each pixel of an (N, 3) array, brightness-aware."""
    pal = np.asarray(list(PALETTE.values()), np.float32)
    n2 = np.maximum((pal * pal).sum(axis=1), 1.0)
    s = np.clip((rgb @ pal.T) / n2, 0.55 / gain, 1.25)
    s[:, (pal == 0).all(axis=1)] = 0.0
    d = np.linalg.norm(rgb[:, None, :] - s[..., None] * pal[None], axis=2)
    return np.asarray(d.argmin(axis=1), np.int32)


def _split_by_color(region: np.ndarray, rgb: np.ndarray, gain: float, min_area: float) -> list[np.ndarray]:
    """Touching shapes of different colours merge into one blob; split it where the colour
    changes. Returns the region itself when it holds one colour."""
    labels = np.full(region.shape, -1, np.int32)
    labels[region] = _pixel_colors(rgb[region], gain)
    kernel = np.ones((3, 3), np.uint8)
    pieces = []
    floor = max(min_area, 0.15 * float(region.sum()))
    for c in np.unique(labels[region]):
        part = cv2.morphologyEx((labels == c).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(part, connectivity=8)
        pieces += [lab == k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= floor and _solid(lab == k)]
    return pieces if len(pieces) >= 2 else [region]


def _solid(mask: np.ndarray, min_solidity: float = 0.75) -> bool:
    """A shape fills most of its convex hull; the blurred rim around a shape (a ring) does not."""
    cnts, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.concatenate(cnts)))
    return float(mask.sum()) >= min_solidity * (hull + 1.0)


def _edge_sharpness(mask: np.ndarray, grad: np.ndarray, contrast: float) -> float:
    """Mean gradient on the mask's boundary relative to its contrast: a solid shape has a
    sharp edge (about 0.3 and more), a blob of background texture a gentle slope (about 0.1)."""
    rim = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return float(grad[rim].mean()) / max(contrast, 1e-3) if rim.any() else 0.0


def find_shapes(image: np.ndarray, min_area_frac: float = 0.0015) -> list[Shape]:
    """Every shape in an RGB uint8 image, largest first."""
    h, w = image.shape[:2]
    noise = _noise_sigma(image.astype(np.float32))
    clean = _denoise(image, noise).astype(np.float32)
    bg, spread = fit_background(clean)
    diff = np.linalg.norm(clean - bg, axis=2)
    gx, gy = cv2.Sobel(clean, cv2.CV_32F, 1, 0), cv2.Sobel(clean, cv2.CV_32F, 0, 1)
    grad = np.sqrt((gx * gx + gy * gy).sum(axis=2)) / 8.0
    lo = max(2.5 * spread, 15.0)
    hi = max(5.0 * spread, 35.0)
    low_mask = (diff > lo).astype(np.uint8)
    if min(h, w) >= 100:
        low_mask = cv2.morphologyEx(low_mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(low_mask, connectivity=8)
    bg_lum = float(np.median(bg.mean(axis=2)))
    gain = float(np.clip(_NOMINAL_BACKGROUND / max(bg_lum, 1.0), 1.0, 10.0))
    min_area = max(10.0, min_area_frac * h * w)
    found: list[Shape] = []
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area < min_area:
            continue
        x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(w, x + bw + 3), min(h, y + bh + 3)
        win = (slice(y0, y1), slice(x0, x1))
        region = labels[win] == k
        pieces = _split_by_color(region, clean[win], gain, min_area)
        for i, piece in enumerate(pieces):
            others = np.zeros_like(region)
            for j, other in enumerate(pieces):
                if j != i:
                    others |= other
            shape = _classify_piece(piece, others, diff[win], grad[win], clean[win], (x0, y0), lo, hi, gain, min_area)
            if shape is not None:
                found.append(shape)
    found.sort(key=lambda s: -s.area)
    return found


def _classify_piece(
    piece: np.ndarray, others: np.ndarray, diff: np.ndarray, grad: np.ndarray, rgb: np.ndarray,
    origin: tuple[int, int], lo: float, hi: float, gain: float, min_area: float,
) -> Shape | None:
    """Re-cut a blob at half its own contrast (where an anti-aliased edge really is), check it
    is a solid shape, and name its shape and colour."""
    peak = float(np.percentile(diff[piece], 90))
    near = cv2.dilate(piece.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~others
    mask = _largest_component(((diff > 0.5 * peak) & near).astype(np.uint8))
    if mask.sum() < min_area * 0.5:
        return None
    sharp = _edge_sharpness(mask.astype(bool), grad, peak)
    if peak < hi and sharp < 0.2:
        return None
    ys, xs = np.nonzero(mask)
    x0, y0 = origin
    box = (float(xs.min() + x0), float(ys.min() + y0), float(xs.max() + x0 + 1), float(ys.max() + y0 + 1))
    feats = np.asarray(_shape_features(mask), np.float32)
    sp = _softmax_neg(np.linalg.norm(_PROTOTYPES - feats, axis=1), _SHAPE_TEMPERATURE)
    cp = _color_probs(np.median(rgb[_interior(mask) > 0], axis=0), gain)
    strength = float(np.clip((peak - lo) / max(hi - lo, 1e-3), 0.0, 1.0)) ** 0.5
    if peak < hi:
        strength = min(strength, float(np.clip(sharp / 0.4, 0.0, 1.0)))
    return Shape(
        box=box,
        shape=SHAPES[int(sp.argmax())],
        color=COLORS[int(cp.argmax())],
        shape_probs={s: float(p) for s, p in zip(SHAPES, sp, strict=True)},
        color_probs={c: float(p) for c, p in zip(COLORS, cp, strict=True)},
        strength=max(strength, 0.05),
        area=float(mask.sum()),
    )


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return mask
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out: np.ndarray = (labels == k).astype(np.uint8)
    return out


def _interior(mask: np.ndarray) -> np.ndarray:
    """The mask shrunk away from its anti-aliased edge, but never to nothing."""
    r = int(np.clip(min(mask.shape) // 10, 1, 4))
    core = cv2.erode(mask, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    return core if core.sum() >= 4 else mask
