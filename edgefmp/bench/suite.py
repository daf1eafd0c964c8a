"""The benchmark suite file: what a stream shows, what is asked of it, and what is true.

A suite (YAML, documented in docs/BENCH.md) fully determines every query's frames and ground
truth: same file, same streams, on any machine. It names

- the image source (easy-VQA's *test* split: the zoo learned from the train split, and a
  benchmark on the training images would measure memorisation);
- how scenes are composed (frame size, shapes per frame, sizes, overlap, spacing);
- a corruption schedule over each stream's frames (clean stretches, day/night cycles,
  bursts of blur or noise);
- the queries: a question, the program that answers it, a *task* from which the truth is
  computed from the scene's objects (never from pixels), the answer type, the number of
  frames, the share of positives and of lookalike distractors.

Validation errors name the file and the field: `binary.yaml: queries[3].program: ...`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgefmp.errors import ConfigError
from edgefmp.scenes import CORRUPTIONS

SUITE_VERSION = 1
DIGEST_OF = "content"  # what `Suite.digest` hashes; results record it beside the digest

Color = Literal["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]
Shape = Literal["circle", "rectangle", "triangle"]
Relation = Literal["left_of", "right_of", "above", "below"]
AnswerType = Literal["binary", "open"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectSpec(_Strict):
    """An object description: a colour, a shape, or both ("red", "circle", "red circle")."""

    color: Color | None = None
    shape: Shape | None = None

    @model_validator(mode="after")
    def _some(self) -> ObjectSpec:
        if self.color is None and self.shape is None:
            raise ValueError("give a color, a shape or both")
        return self

    @property
    def text(self) -> str:
        return " ".join(v for v in (self.color, self.shape) if v)


# ------------------------------------------------------------------------------------ tasks


class ExistsTask(_Strict):
    """Is there an `object`? (binary)"""

    kind: Literal["exists"]
    object: ObjectSpec


class CountTask(_Strict):
    """How many `object`s? Binary: is the count `op` `n`; open: the count itself (0..`max`)."""

    kind: Literal["count"]
    object: ObjectSpec
    op: Literal["eq", "ge"] = "eq"
    n: int = Field(default=2, ge=1, le=6)
    max: int = Field(default=3, ge=1, le=6)


class RelationTask(_Strict):
    """Is there an `a` that is `relation` of a `b`? (binary)"""

    kind: Literal["relation"]
    a: ObjectSpec
    b: ObjectSpec
    relation: Relation


class PropertyTask(_Strict):
    """Does the (single) `subject` have `property`? Every frame shows exactly one subject. (binary)"""

    kind: Literal["property"]
    subject: ObjectSpec
    property: ObjectSpec


class AttributeTask(_Strict):
    """What `ask` (colour or shape) is the `subject`? "none" when there is no subject. (open)"""

    kind: Literal["attribute"]
    subject: ObjectSpec
    ask: Literal["color", "shape"]


class RelativeTask(_Strict):
    """What `ask` is the `target` that is `relation` of the `anchor`? "none" when no target is
    on that side (or there is no anchor). (open)"""

    kind: Literal["relative"]
    anchor: ObjectSpec
    target: ObjectSpec
    relation: Relation
    ask: Literal["color", "shape"]


Task = Annotated[
    ExistsTask | CountTask | RelationTask | PropertyTask | AttributeTask | RelativeTask,
    Field(discriminator="kind"),
]

BINARY_TASKS = frozenset({"exists", "count", "relation", "property"})
OPEN_TASKS = frozenset({"count", "attribute", "relative"})


# ------------------------------------------------------------------------------ corruptions


class Segment(_Strict):
    """Frames [start, end) get `kind` at `severity`; kind null (or "clean") means clean."""

    type: Literal["segment"]
    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, ge=1)
    kind: str | None = None
    severity: int = Field(default=1, ge=1, le=5)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str | None) -> str | None:
        return _check_kind(v)


class Cycle(_Strict):
    """A periodic condition (day/night): over every `period` frames, severity steps through
    `severities` in equal parts; 0 is clean."""

    type: Literal["cycle"]
    kind: str
    period: int = Field(ge=2)
    severities: list[int] = Field(min_length=1)
    start: int = Field(default=0, ge=0)
    end: int | None = Field(default=None, ge=1)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        out = _check_kind(v)
        if out is None:
            raise ValueError("a cycle needs a corruption kind")
        return out

    @field_validator("severities")
    @classmethod
    def _sev(cls, v: list[int]) -> list[int]:
        if any(not 0 <= s <= 5 for s in v):
            raise ValueError(f"severities must lie in 0..5 (0 = clean), got {v}")
        return v


class Bursts(_Strict):
    """Random bursts: on average one every `every` frames, each `length` frames long, of one of
    `kinds` at a severity in `severity`; drawn from the query's seed, so reproducible."""

    type: Literal["bursts"]
    kinds: list[str] = Field(min_length=1)
    every: int = Field(ge=2)
    length: tuple[int, int] = (3, 8)
    severity: tuple[int, int] = (2, 4)

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        for k in v:
            if _check_kind(k) is None:
                raise ValueError("bursts need corruption kinds, not clean")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> Bursts:
        lo, hi = self.length
        if not 1 <= lo <= hi:
            raise ValueError(f"length must be [lo, hi] with 1 <= lo <= hi, got {list(self.length)}")
        slo, shi = self.severity
        if not 1 <= slo <= shi <= 5:
            raise ValueError(f"severity must be [lo, hi] within 1..5, got {list(self.severity)}")
        return self


CorruptionItem = Annotated[Segment | Cycle | Bursts, Field(discriminator="type")]


def _check_kind(v: str | None) -> str | None:
    if v is None or v == "clean":
        return None
    if v not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {v!r}; available: clean, {', '.join(CORRUPTIONS)}")
    return v


# ---------------------------------------------------------------------------------- the rest


class ImagesSpec(_Strict):
    """Where the shapes come from. Only the easy-VQA *test* split: the zoo trained on train."""

    source: Literal["easy-vqa"] = "easy-vqa"
    split: str = "test"
    limit: int | None = Field(default=None, ge=24)

    @field_validator("split")
    @classmethod
    def _split(cls, v: str) -> str:
        if v == "train":
            raise ValueError(
                "the train split is what the zoo learned from; a benchmark on it measures memorisation. Use: test"
            )
        if v != "test":
            raise ValueError(f"unknown split {v!r}; available: test")
        return v


class SceneSpec(_Strict):
    """How each frame is composed: `objects` shapes per frame (targets included), each with its
    longer side `scale` x the frame's shorter side; `min_gap` pixels between the centres of the
    objects a relation compares, so no frame's truth hangs on a few pixels."""

    size: tuple[int, int] = (240, 320)
    objects: tuple[int, int] = (2, 5)
    scale: tuple[float, float] = (0.14, 0.30)
    max_overlap: float = Field(default=0.05, ge=0, le=0.5)
    min_gap: float = Field(default=24.0, ge=0)
    noise_sigma: float = Field(default=2.5, ge=0, le=20)

    @model_validator(mode="after")
    def _ranges(self) -> SceneSpec:
        h, w = self.size
        if h < 64 or w < 64:
            raise ValueError(f"size must be at least [64, 64] (height, width), got {list(self.size)}")
        lo, hi = self.objects
        if not 1 <= lo <= hi <= 8:
            raise ValueError(f"objects must be [lo, hi] with 1 <= lo <= hi <= 8, got {list(self.objects)}")
        slo, shi = self.scale
        if not 0.05 <= slo <= shi <= 0.6:
            raise ValueError(f"scale must be [lo, hi] within 0.05..0.6, got {list(self.scale)}")
        return self


class QuerySpec(_Strict):
    """One query: its question, program, task (for the truth), answer type and stream shape.

    `positives`: share of frames whose answer is "yes" (binary) or that are answerable with a
    non-empty answer (open). `lookalikes`: share of the other frames that are lookalikes of a
    positive (one attribute changed, or the relation reversed); the rest are random scenes.
    """

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    question: str = Field(min_length=3)
    program: str
    task: Task
    answer: AnswerType | None = None
    frames: int | None = Field(default=None, ge=10, le=100_000)
    positives: float | None = Field(default=None, gt=0, lt=1)
    lookalikes: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _answer_fits(self) -> QuerySpec:
        if self.answer is not None:
            allowed = BINARY_TASKS if self.answer == "binary" else OPEN_TASKS
            if self.task.kind not in allowed:
                raise ValueError(
                    f"task {self.task.kind!r} has no {self.answer} answer; "
                    f"{self.answer} tasks: {', '.join(sorted(allowed))}"
                )
        return self


class Defaults(_Strict):
    """Values a query takes when it does not give its own."""

    answer: AnswerType = "binary"
    frames: int = Field(default=300, ge=10, le=100_000)
    positives: float = Field(default=0.07, gt=0, lt=1)
    lookalikes: float = Field(default=0.3, ge=0, le=1)


class SuiteSpec(_Strict):
    """The top level of a suite file."""

    version: Literal[1] = 1
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(ge=0)
    metric: Literal["f1", "accuracy"] | None = None
    images: ImagesSpec = Field(default_factory=ImagesSpec)
    scene: SceneSpec = Field(default_factory=SceneSpec)
    corruptions: list[CorruptionItem] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    queries: list[QuerySpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> SuiteSpec:
        seen: set[str] = set()
        for i, q in enumerate(self.queries):
            if q.id in seen:
                raise ValueError(f"queries[{i}].id: {q.id!r} is used twice; ids name result rows")
            seen.add(q.id)
        return self


class Query:
    """A query with its defaults resolved and its program path made absolute."""

    def __init__(self, spec: QuerySpec, defaults: Defaults, base_dir: Path, index: int) -> None:
        self.spec = spec
        self.index = index
        self.id = spec.id
        self.question = spec.question
        self.task = spec.task
        self.answer: AnswerType = spec.answer or defaults.answer
        self.frames = spec.frames or defaults.frames
        self.positives = spec.positives if spec.positives is not None else defaults.positives
        self.lookalikes = spec.lookalikes if spec.lookalikes is not None else defaults.lookalikes
        program = Path(spec.program).expanduser()
        self.program = program if program.is_absolute() else (base_dir / program).resolve()

    def __repr__(self) -> str:
        return f"Query({self.id!r}, {self.task.kind}, {self.answer}, {self.frames} frames)"


class Suite:
    """A validated suite: its spec, where it came from, and its resolved queries."""

    def __init__(self, spec: SuiteSpec, source: str, base_dir: Path, text: str) -> None:
        self.spec = spec
        self.source = source
        self.base_dir = base_dir
        # What results are checked against (`--from-results`): the validated content, so a
        # comment or a reformatted line does not make a suite "another version".
        content = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        self.digest = hashlib.blake2b(content.encode("utf-8"), digest_size=8).hexdigest()
        # The digest of the file's text, which results written before the content digest hold.
        self.text_digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
        self.queries = [Query(q, spec.defaults, base_dir, i) for i, q in enumerate(spec.queries)]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def metric(self) -> str:
        """F1 when every query is binary (class imbalance makes accuracy meaningless), else accuracy."""
        if self.spec.metric is not None:
            return self.spec.metric
        return "f1" if all(q.answer == "binary" for q in self.queries) else "accuracy"

    def query(self, query_id: str) -> Query:
        for q in self.queries:
            if q.id == query_id:
                return q
        raise ConfigError(f"{self.source}: no query {query_id!r}; queries: {', '.join(q.id for q in self.queries)}")

    def stream_seed(self, query: Query) -> int:
        """A query's stream seed: from the suite seed and the query id (not its position), so
        reordering or adding queries leaves the other streams unchanged."""
        digest = hashlib.blake2b(f"{self.spec.seed}:{query.id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


class _Tagged:
    """A discriminated union in the schema walk of `_describe`: its members by tag value."""

    def __init__(self, annotation: Any, discriminator: str) -> None:
        self.members: dict[str, type[BaseModel]] = {}
        for member in get_args(annotation):
            tags = get_args(member.model_fields[discriminator].annotation)
            self.members.update({str(t): member for t in tags})


def _node(annotation: Any) -> Any:
    """What the schema walk keeps of a field's annotation: a model class, a `_Tagged` union,
    a ("list", item) pair, or None where the walk cannot follow (scalars, tuples)."""
    if get_origin(annotation) is Annotated:
        inner, *meta = get_args(annotation)
        tag = next((m.discriminator for m in meta if getattr(m, "discriminator", None)), None)
        return _Tagged(inner, str(tag)) if tag else _node(inner)
    if get_origin(annotation) is list:
        return ("list", _node(get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _child(node: Any, part: Any) -> Any:
    if isinstance(part, int):
        return node[1] if isinstance(node, tuple) else None
    if isinstance(node, type) and issubclass(node, BaseModel):
        info = node.model_fields.get(str(part))
        if info is None:
            return None
        if info.discriminator:
            return _Tagged(info.annotation, str(info.discriminator))
        return _node(info.annotation)
    return None


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """(the field path as the user wrote it, the message) of one pydantic error.

    Walks the suite schema along the error's location so that the tag pydantic inserts after a
    discriminated union (`task.relation.relation` for a relation task's `relation` field) is
    dropped and nothing else is; an unknown key is named with the closest known one."""
    path, node = "", _node(SuiteSpec)
    parent = node
    for part in error["loc"]:
        if isinstance(node, _Tagged) and str(part) in node.members:
            node = node.members[str(part)]  # the union's tag, not a field the user wrote
            continue
        parent = node
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
        node = _child(node, part)
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        known = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        msg = f"unknown key {key!r}" + (
            f"; did you mean {close[0]!r}?" if close else f"; keys here: {', '.join(known)}" if known else ""
        )
    elif error["type"] == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        tag, field = str(ctx.get("tag")), str(ctx.get("discriminator", "kind")).strip("'")
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        close = difflib.get_close_matches(tag, expected, n=1, cutoff=0.6)
        msg = f"unknown {field} {tag!r}" + (f"; did you mean {close[0]!r}?" if close else "")
        msg += f" ({field}s: {', '.join(expected)})"
    elif (
        error["type"] not in ("missing", "value_error")
        and isinstance(error.get("input"), (str, int, float))
        and repr(error["input"]) not in msg
    ):
        msg += f"; got {error['input']!r}"  # the bad value, as the user wrote it
    return path, msg


def _first_error(errors: list[Any]) -> Any:
    """The error to report: an unknown key first (a typo'd key also makes its field "missing",
    and the typo is what the user must fix), else pydantic's first."""
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def parse_suite(data: Any, source: str, base_dir: Path, text: str = "", check_programs: bool = True) -> Suite:
    """Validate a suite mapping; `source` names it in errors (`binary.yaml: queries[3].task: ...`)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping with 'name:', 'seed:' and 'queries:', got {type(data).__name__}"
        )
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        where, msg = _describe(_first_error(exc.errors()))
        raise ConfigError(f"{source}: {where}: {msg}" if where else f"{source}: {msg}") from exc
    suite = Suite(spec, source, base_dir, text or repr(data))
    if check_programs:
        for q in suite.queries:
            if not q.program.is_file():
                raise ConfigError(
                    f"{source}: queries[{q.index}].program: no file {q.spec.program!r} "
                    f"(resolved to {q.program}; paths are relative to the suite file)"
                )
    return suite


def load_suite(path: str | Path, check_programs: bool = True) -> Suite:
    """Read and validate a suite file; program paths resolve against the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read suite {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {_yaml_problem(exc)}") from exc
    return parse_suite(data, path.name, path.resolve().parent, text, check_programs)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML parser objects to and where (line, column), without its own name for the
    input (`<unicode string>`): the caller names the file."""
    mark = getattr(exc, "problem_mark", None)
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ": ".join(str(p) for p in parts if p) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {text}" if mark is not None else text


__all__ = [
    "DIGEST_OF",
    "SUITE_VERSION",
    "AttributeTask",
    "Bursts",
    "CountTask",
    "Cycle",
    "ExistsTask",
    "ObjectSpec",
    "PropertyTask",
    "Query",
    "QuerySpec",
    "RelationTask",
    "RelativeTask",
    "SceneSpec",
    "Segment",
    "Suite",
    "SuiteSpec",
    "load_suite",
    "parse_suite",
]
