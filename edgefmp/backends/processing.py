"""Pre- and post-processing shared by the model backends (ONNX Runtime, TensorRT).

Everything here is a pure function of arrays, a manifest and a request, so it is tested
without any engine, and every engine that can produce named output arrays gets the same
results: `preprocess` turns an RGB image into the input tensor the manifest describes and
remembers how the image was resized; `postprocess` turns raw outputs into the function's
result type, mapping boxes back into the request image's pixels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from edgefmp.backends.manifest import Manifest, Postprocess, Preprocess
from edgefmp.errors import BackendError
from edgefmp.results import (
    Answer,
    AnswerRequest,
    ClassifyRequest,
    Detections,
    DetectRequest,
    Request,
    Result,
    Verdict,
    VerifyRequest,
    VQARequest,
)

# Which functions a postprocess kind can answer.
# `answer` (whole-frame questions) is read from a detector's detections by scene_questions.py.
SERVES: dict[str, tuple[str, ...]] = {
    "yolo": ("detect", "vqa", "answer"),
    "detr": ("detect", "vqa", "answer"),
    "classify": ("classify", "verify"),
    "attributes": ("verify", "classify", "vqa"),
    "none": (),
}

# ----------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Resize:
    """How a request image was placed into the model input: x_in = x_img * sx + pad_x.

    Kept per call so boxes predicted in input pixels map back exactly, for stretch and
    letterbox alike.
    """

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]
    sx: float
    sy: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes in input pixels -> xyxy in request-image pixels, clipped to the image."""
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - self.pad_x) / self.sx
        b[:, [1, 3]] = (b[:, [1, 3]] - self.pad_y) / self.sy
        h, w = self.src_hw
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
        return b

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes in request-image pixels -> input pixels (the inverse of `to_image`)."""
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = b[:, [0, 2]] * self.sx + self.pad_x
        b[:, [1, 3]] = b[:, [1, 3]] * self.sy + self.pad_y
        return b


def resize_image(
    image: np.ndarray, size: tuple[int, int], mode: Literal["stretch", "letterbox"], pad_value: int = 114
) -> tuple[np.ndarray, Resize]:
    """Resize `image` to `size` (height, width) by stretching, or letterboxing: keep the aspect
    ratio, centre it and pad with `pad_value`."""
    h0, w0 = image.shape[:2]
    h, w = int(size[0]), int(size[1])
    if mode == "stretch":
        out = image if (h0, w0) == (h, w) else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        return out, Resize((h0, w0), (h, w), w / w0, h / h0)
    r = min(h / h0, w / w0)
    nw, nh = max(1, round(w0 * r)), max(1, round(h0 * r))
    inner = image if (nh, nw) == (h0, w0) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = (w - nw) // 2, (h - nh) // 2
    out = np.full((h, w, image.shape[2]), pad_value, dtype=image.dtype)
    out[top : top + nh, left : left + nw] = inner
    return out, Resize((h0, w0), (h, w), nw / w0, nh / h0, float(left), float(top))


def to_tensor(image: np.ndarray, pre: Preprocess) -> np.ndarray:
    """A resized RGB uint8 image -> the input tensor (batch of one) `pre` describes."""
    x = image[..., ::-1] if pre.color == "BGR" else image
    x = x.astype(np.float32) * np.float32(pre.scale)
    if pre.mean != (0.0, 0.0, 0.0):
        x -= np.asarray(pre.mean, dtype=np.float32)
    if pre.std != (1.0, 1.0, 1.0):
        x /= np.asarray(pre.std, dtype=np.float32)
    if pre.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    x = x[None]
    if pre.dtype == "uint8":
        return np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    return np.ascontiguousarray(x.astype(pre.dtype))


def preprocess(image: np.ndarray, pre: Preprocess) -> tuple[np.ndarray, Resize]:
    """An RGB uint8 request image -> (input tensor, how it was resized)."""
    resized, info = resize_image(image, pre.size, pre.resize, pre.pad_value)
    return to_tensor(resized, pre), info


def input_shape(pre: Preprocess) -> list[int]:
    """The input tensor shape `pre` produces: [1, 3, H, W] or [1, H, W, 3]."""
    h, w = pre.size
    return [1, 3, h, w] if pre.layout == "NCHW" else [1, h, w, 3]


# ------------------------------------------------------------------------------- activations


def activate(x: np.ndarray, kind: str, axis: int = -1) -> np.ndarray:
    """softmax / sigmoid / none, computed in float32 and stable for large logits."""
    x = np.asarray(x, dtype=np.float32)
    out: np.ndarray = x
    if kind == "softmax":
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
    elif kind == "sigmoid":
        out = 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x), without overflow warnings
    return out


def label_probs(raw: np.ndarray, post: Postprocess, labels: Sequence[str]) -> np.ndarray:
    """One probability per label from a classify/attributes output.

    For `attributes`, `softmax` is applied within each group (a shape has one colour) and
    labels outside every group get a sigmoid; `sigmoid` treats all labels independently.
    """
    x = np.asarray(raw, dtype=np.float32).reshape(-1)
    if x.shape[0] != len(labels):
        raise BackendError(f"model output has {x.shape[0]} values but the manifest lists {len(labels)} labels")
    if post.kind != "attributes" or post.activation != "softmax":
        return activate(x, post.activation)
    out = activate(x, "sigmoid")
    index = {lab: i for i, lab in enumerate(labels)}
    for members in post.groups.values():
        idx = [index[m] for m in members]
        out[idx] = activate(x[idx], "softmax")
    return out


# -------------------------------------------------------------------------------- detections


@dataclass(frozen=True)
class Decoded:
    """Candidate boxes (xyxy, model-input pixels) with a score and class id each."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def take(self, idx: np.ndarray) -> Decoded:
        return Decoded(self.boxes[idx], self.scores[idx], self.class_ids[idx])


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float32)
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


def _drop_batch(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3:
        if a.shape[0] != 1:
            raise BackendError(f"{what}: expected a batch of one, got shape {list(a.shape)}")
        a = a[0]
    if a.ndim != 2:
        raise BackendError(f"{what}: expected a 2-D output (after the batch axis), got shape {list(a.shape)}")
    return a


def decode_yolo(output: np.ndarray, num_classes: int, activation: str, score_threshold: float) -> Decoded:
    """A YOLO head: (4 + C, N) or (N, 4 + C) [optionally 5 + C with objectness], boxes cx,cy,w,h
    in input pixels. The channels-first form (Ultralytics' export) wins when both could fit."""
    a = _drop_batch(output, "yolo output").astype(np.float32)
    widths = (4 + num_classes, 5 + num_classes)
    if a.shape[0] in widths:
        a = a.T
    elif a.shape[1] not in widths:
        raise BackendError(
            f"yolo output of shape {list(np.shape(output))} fits neither (4+C, N) nor (N, 4+C) "
            f"with C={num_classes} labels; check the manifest's labels"
        )
    start = a.shape[1] - num_classes
    cls = activate(a[:, start:], activation)
    if start == 5:
        cls = cls * activate(a[:, 4:5], "sigmoid" if activation == "sigmoid" else "none")
    ids = cls.argmax(axis=1) if len(cls) else np.zeros((0,), np.int64)
    scores = cls[np.arange(len(cls)), ids] if len(cls) else np.zeros((0,), np.float32)
    keep = scores >= score_threshold
    return Decoded(cxcywh_to_xyxy(a[keep, :4]), scores[keep], ids[keep].astype(np.int32))


def decode_detr(
    logits: np.ndarray,
    boxes: np.ndarray,
    input_hw: tuple[int, int],
    num_classes: int,
    activation: str,
    no_object: bool,
    score_threshold: float,
) -> Decoded:
    """A DETR head: logits (Q, C [+1 no-object]) and pred_boxes (Q, 4) normalised cx,cy,w,h of
    the model input."""
    lg = _drop_batch(logits, "detr logits").astype(np.float32)
    bx = _drop_batch(boxes, "detr pred_boxes").astype(np.float32)
    expected = num_classes + (1 if no_object else 0)
    if lg.shape[1] != expected or bx.shape != (lg.shape[0], 4):
        raise BackendError(
            f"detr outputs of shapes {list(lg.shape)} and {list(bx.shape)} do not fit {num_classes} labels"
            f"{' + no-object' if no_object else ''}; expected (Q, {expected}) and (Q, 4)"
        )
    probs = activate(lg, activation)[:, :num_classes]
    ids = probs.argmax(axis=1)
    scores = probs[np.arange(len(probs)), ids]
    keep = scores >= score_threshold
    h, w = input_hw
    xyxy = cxcywh_to_xyxy(bx[keep]) * np.asarray([w, h, w, h], dtype=np.float32)
    return Decoded(xyxy, scores[keep], ids[keep].astype(np.int32))


def nms(d: Decoded, iou_threshold: float, max_detections: int) -> Decoded:
    """Class-aware non-maximum suppression (OpenCV), best first, at most `max_detections`."""
    if len(d.scores) == 0:
        return d
    xywh = np.concatenate([d.boxes[:, :2], d.boxes[:, 2:] - d.boxes[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(),
        d.scores.tolist(),
        d.class_ids.astype(int).tolist(),
        0.0,
        float(iou_threshold),
        1.0,
        int(max_detections),
    )
    idx = np.asarray(kept, dtype=np.int64).reshape(-1)
    return d.take(idx[np.argsort(-d.scores[idx], kind="stable")])


def top_k(d: Decoded, k: int) -> Decoded:
    order = np.argsort(-d.scores, kind="stable")[:k]
    return d.take(order)


def match_labels(requested: Sequence[str], labels: Sequence[str]) -> dict[int, str]:
    """Class id -> the requested spelling, matching case-insensitively. Requested labels the
    model does not know are skipped: not finding them is an answer, not an error."""
    wanted = {r.strip().lower(): r for r in requested}
    out = {i: wanted[lab.lower()] for i, lab in enumerate(labels) if lab.lower() in wanted}
    # A request that is not a label matches the labels containing all its words, so "circle"
    # finds every "<colour> circle" of a detector whose classes are "<colour> <shape>".
    for key, name in wanted.items():
        words = set(key.split())
        if words and key not in {lab.lower() for lab in labels}:
            for i, lab in enumerate(labels):
                if i not in out and words <= set(lab.lower().split()):
                    out[i] = name
    return out


def to_detections(d: Decoded, names: Mapping[int, str], resize: Resize) -> Detections:
    keep = np.asarray([int(c) in names for c in d.class_ids], dtype=bool)
    d = d.take(np.nonzero(keep)[0])
    return Detections(
        boxes=resize.to_image(d.boxes), scores=d.scores.clip(0, 1), labels=[names[int(c)] for c in d.class_ids]
    )


# --------------------------------------------------------------------- template questions


@dataclass(frozen=True)
class TemplateQuestion:
    """A question reduced to what a small model can answer.

    kind: `what` asks for the value of `group`; `yesno` asks whether something with all of
    `mentioned` labels is there (inverted when `negated`); `count` asks how many; `unknown`
    names nothing the model knows.

    A question about one thing placed relative to another ("is there a red circle to the left
    of a blue triangle?") also says the `relation` (left_of, right_of, above, below), and splits
    `mentioned` into the `subject`'s labels (before the relation) and the `anchor`'s (after).
    `compare` is (op, n) for "are there exactly / at least / at most / more than / fewer than n
    ...?" (op eq, ge, le, gt, lt). Backends that do not place objects read `mentioned` alone.
    """

    kind: Literal["what", "yesno", "count", "unknown"]
    group: str | None
    mentioned: tuple[str, ...]
    negated: bool = False
    subject: tuple[str, ...] = ()
    relation: str | None = None
    anchor: tuple[str, ...] = ()
    compare: tuple[str, int] | None = None


_SYNONYMS = {"colour": "color", "colours": "colors", "grey": "gray"}
_YESNO = {"is", "are", "does", "do", "did", "can", "was", "were", "has", "have", "will", "could", "isn", "doesn"}
_NEGATIONS = {"not", "no", "none", "nothing", "isn", "doesn", "aren", "don", "without"}
# Relation phrases (token sequences) and the relation they name; "to the left of" holds "left of".
_RELATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("left", "of"), "left_of"),
    (("right", "of"), "right_of"),
    (("above",), "above"),
    (("below",), "below"),
    (("under",), "below"),
    (("beneath",), "below"),
    (("underneath",), "below"),
)
_NUMBERS = {
    w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))
}
_COMPARE_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("exactly",), "eq"),
    (("at", "least"), "ge"),
    (("at", "most"), "le"),
    (("more", "than"), "gt"),
    (("fewer", "than"), "lt"),
    (("less", "than"), "lt"),
)


def _tokens(text: str) -> list[str]:
    return [_SYNONYMS.get(t, t) for t in re.findall(r"[a-z0-9]+", text.lower())]


def parse_question(question: str, groups: Mapping[str, Sequence[str]]) -> TemplateQuestion:
    """Parse template questions such as "what color is the shape?", "what is the color of the
    triangle?", "is there not a red circle?", "how many blue shapes are there?"."""
    toks = _tokens(question)
    group_of = {g.lower(): g for g in groups}
    for g in list(group_of):
        group_of.setdefault(g + "s", group_of[g])
    mentioned: list[tuple[int, str]] = []  # (token index, label)
    label_seqs = sorted(
        ((tuple(_tokens(lab)), lab) for members in groups.values() for lab in members),
        key=lambda t: -len(t[0]),
    )
    i = 0
    while i < len(toks):
        for seq, lab in label_seqs:
            if seq and tuple(toks[i : i + len(seq)]) in (seq, seq[:-1] + (seq[-1] + "s",)):
                mentioned.append((i, lab))
                i += len(seq) - 1
                break
        i += 1
    mentioned_t = tuple(dict.fromkeys(lab for _, lab in mentioned))
    at, relation = _find_phrase(toks, _RELATIONS)
    if relation is None:
        place: dict[str, Any] = {"subject": mentioned_t}
    else:
        place = {
            "subject": tuple(dict.fromkeys(lab for j, lab in mentioned if j < at)),
            "relation": relation,
            "anchor": tuple(dict.fromkeys(lab for j, lab in mentioned if j > at)),
        }
    if "how" in toks and "many" in toks:
        return TemplateQuestion("count", None, mentioned_t, **place)
    if toks and toks[0] in _YESNO:
        if not mentioned_t and not any(t in group_of for t in toks):
            return TemplateQuestion("unknown", None, ())
        negated = any(t in _NEGATIONS for t in toks)
        return TemplateQuestion("yesno", None, mentioned_t, negated, compare=_count_compare(toks), **place)
    group = None
    for a, b in zip(toks, toks[1:], strict=False):
        if a in ("what", "which") and b in group_of:
            group = group_of[b]
            break
        if b == "of" and a in group_of:
            group = group_of[a]
            break
    if group is None:
        named = [group_of[t] for t in toks if t in group_of]
        group = named[-1] if named else None
    if group is None:
        return TemplateQuestion("unknown", None, mentioned_t)
    return TemplateQuestion("what", group, mentioned_t, **place)


def _find_phrase(toks: Sequence[str], phrases: Sequence[tuple[tuple[str, ...], str]]) -> tuple[int, str | None]:
    """(index, name) of the first of `phrases` in `toks`, or (len(toks), None)."""
    for i in range(len(toks)):
        for seq, name in phrases:
            if tuple(toks[i : i + len(seq)]) == seq:
                return i, name
    return len(toks), None


def _count_compare(toks: Sequence[str]) -> tuple[str, int] | None:
    """("eq", 2) for "are there exactly two ...?" / "are there two ...?", ("ge", 3) for "at
    least three", and so on; None when the question names no number."""
    for i, t in enumerate(toks):
        n = int(t) if t.isdigit() else _NUMBERS.get(t)
        if n is not None:
            _, op = _find_phrase(toks[max(0, i - 2) : i], _COMPARE_WORDS)
            return op or "eq", n
    return None


# ------------------------------------------------------------------------ answers from probs


def choose_option(labels: Sequence[str], probs: np.ndarray, options: Sequence[str]) -> Answer:
    """The option with the highest probability; confidence renormalised over the options the
    model knows. Options the model has no label for count as probability 0."""
    index = {lab.lower(): i for i, lab in enumerate(labels)}
    known = [o for o in options if o.strip().lower() in index]
    if not known:
        raise BackendError(
            f"none of the options {list(options)} is a label of this model; it knows: {', '.join(labels)}"
        )
    p = np.asarray([float(probs[index[o.strip().lower()]]) for o in known])
    total = float(p.sum())
    best = int(p.argmax())
    conf = float(p[best] / total) if total > 0 else 1.0 / len(known)
    return Answer(text=known[best], confidence=min(max(conf, 0.0), 1.0))


def _prob(labels: Sequence[str], probs: np.ndarray, name: str) -> float | None:
    for i, lab in enumerate(labels):
        if lab.lower() == name.strip().lower():
            return float(probs[i])
    return None


def verify_labels(labels: Sequence[str], probs: np.ndarray, subject: str, prop: str, threshold: float) -> Verdict:
    """Does the image show `prop` (and `subject`, when `subject` is also a label)?"""
    p_prop = _prob(labels, probs, prop)
    if p_prop is None:
        raise BackendError(f"property {prop!r} is not a label of this model; it knows: {', '.join(labels)}")
    p_subj = _prob(labels, probs, subject)
    p = p_prop if p_subj is None else min(p_prop, p_subj)
    value = p >= threshold
    return Verdict(value=value, confidence=min(max(p if value else 1.0 - p, 0.0), 1.0))


def answer_attributes(
    labels: Sequence[str], probs: np.ndarray, groups: Mapping[str, Sequence[str]], question: str, threshold: float
) -> Answer:
    """Template VQA on a single-object attributes model."""
    q = parse_question(question, groups)
    if q.kind == "what" and q.group is not None:
        members = list(groups[q.group])
        return choose_option(labels, probs, members)
    if q.kind == "yesno" and q.mentioned:
        ps = [_prob(labels, probs, m) or 0.0 for m in q.mentioned]
        p = min(ps)
        present = p >= threshold
        yes = present != q.negated
        return Answer(text="yes" if yes else "no", confidence=min(max(p if present else 1.0 - p, 0.0), 1.0))
    raise BackendError(
        f"cannot answer {question!r}: this model answers only questions about: {', '.join(groups)} "
        f"(what {next(iter(groups), 'color')} ...? or is there a <label>?)"
    )


# ------------------------------------------------------------------------------ postprocess


def _output(outputs: Mapping[str, np.ndarray], manifest: Manifest, index: int, preferred: str) -> np.ndarray:
    if preferred in outputs:
        return outputs[preferred]
    if len(manifest.outputs) > index and manifest.outputs[index].name in outputs:
        return outputs[manifest.outputs[index].name]
    values = list(outputs.values())
    if len(values) <= index:
        raise BackendError(f"model gave {len(values)} outputs; {manifest.postprocess.kind} needs {index + 1}")
    return values[index]


def decode_detections(manifest: Manifest, outputs: Mapping[str, np.ndarray], input_hw: tuple[int, int]) -> Decoded:
    """Raw outputs of a yolo/detr model -> candidate boxes after thresholds (and NMS for yolo)."""
    post, n = manifest.postprocess, len(manifest.labels)
    if post.kind == "yolo":
        d = decode_yolo(_output(outputs, manifest, 0, "output0"), n, post.activation, post.score_threshold)
        return nms(d, post.iou_threshold, post.max_detections)
    logits = _output(outputs, manifest, 0, "logits")
    boxes = _output(outputs, manifest, 1, "pred_boxes")
    if np.shape(logits)[-1] == 4 and np.shape(boxes)[-1] != 4:
        logits, boxes = boxes, logits
    d = decode_detr(logits, boxes, input_hw, n, post.activation, post.detr_no_object, post.score_threshold)
    return top_k(d, post.max_detections)


def _answer_from_detections(d: Decoded, labels: Sequence[str], question: str) -> Answer:
    q = parse_question(question, {"object": list(labels)})
    if q.kind not in ("count", "yesno") or not q.mentioned:
        raise BackendError(
            f"cannot answer {question!r}: a detector answers only 'how many <label>?' and "
            f"'is there a <label>?' about its labels"
        )
    wanted = {m.lower() for m in q.mentioned}
    hits = [s for s, c in zip(d.scores, d.class_ids, strict=True) if labels[int(c)].lower() in wanted]
    if q.kind == "count":
        conf = float(np.prod(hits)) ** (1 / len(hits)) if hits else None
        return Answer(text=str(len(hits)), confidence=conf)
    present = bool(hits)
    p = float(max(hits)) if hits else 0.5
    return Answer(text="yes" if present != q.negated else "no", confidence=min(max(p, 0.0), 1.0))


def postprocess(manifest: Manifest, outputs: Mapping[str, np.ndarray], request: Request, resize: Resize) -> Result:
    """Raw model outputs -> the result type of `request`'s function."""
    post, labels = manifest.postprocess, manifest.labels
    if post.kind in ("yolo", "detr"):
        d = decode_detections(manifest, outputs, resize.dst_hw)
        if isinstance(request, DetectRequest):
            return to_detections(d, match_labels(request.labels, labels), resize)
        if isinstance(request, AnswerRequest):
            # imported here: scene_questions builds on this module's parse_question
            from edgefmp.backends.scene_questions import answer_from_detections

            every = to_detections(d, dict(enumerate(labels)), resize)
            return answer_from_detections(every, request.question, whole_frame=True)
        if isinstance(request, VQARequest):
            return _answer_from_detections(d, labels, request.question)
    elif post.kind in ("classify", "attributes"):
        probs = label_probs(_output(outputs, manifest, 0, "logits"), post, labels)
        if isinstance(request, ClassifyRequest):
            return choose_option(labels, probs, request.options)
        if isinstance(request, VerifyRequest):
            return verify_labels(labels, probs, request.subject, request.property, post.verify_threshold)
        if isinstance(request, VQARequest) and post.kind == "attributes":
            groups = post.groups or {"label": list(labels)}
            return answer_attributes(labels, probs, groups, request.question, post.verify_threshold)
    raise BackendError(
        f"a model with postprocess kind {post.kind!r} cannot answer a {request.function} request; "
        f"it serves: {', '.join(SERVES[post.kind]) or 'nothing'}"
    )
