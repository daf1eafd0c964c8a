"""The validator: a program's syntax tree against an allowlist, before anything runs.

Programs may be written by an LLM, so everything not explicitly allowed is rejected with a
ProgramError that names the line, the construct and what to write instead. The runtime
(rewrite.py, guards.py) does not rely on the validator alone: names the validator misses
still resolve against a builtins dict that holds only the safe builtins.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from edgefmp.errors import ProgramError
from edgefmp.program import allowlist as names
from edgefmp.program.answers import RETURN_ADVICE, entry_returns, returns_what

_ALLOWED_NODES: frozenset[type] = frozenset(
    {
        ast.Module, ast.FunctionDef, ast.Return, ast.Assign, ast.AugAssign, ast.AnnAssign,
        ast.For, ast.While, ast.If, ast.Expr, ast.Pass, ast.Break, ast.Continue, ast.Delete,
        ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Lambda, ast.IfExp, ast.Dict, ast.Set,
        ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Compare, ast.Call,
        ast.FormattedValue, ast.JoinedStr, ast.Constant, ast.Attribute, ast.Subscript,
        ast.Name, ast.List, ast.Tuple, ast.Slice,
        ast.Load, ast.Store, ast.Del, ast.And, ast.Or,
        ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift,
        ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd,
        ast.Invert, ast.Not, ast.UAdd, ast.USub,
        ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
        ast.comprehension, ast.arguments, ast.arg, ast.keyword,
    }
)  # fmt: skip

_DSL_HINT = "programs may only use the edgefmp DSL (image.find, exists, count, verify_property, query, ...)"

# Rejected constructs that deserve a message of their own: node type name -> (what, advice).
_REJECTED: dict[str, tuple[str, str]] = {
    "Import": ("import", _DSL_HINT),
    "ImportFrom": ("import", _DSL_HINT),
    "ClassDef": ("a class definition", "use functions"),
    "AsyncFunctionDef": ("async def", "use a plain def"),
    "AsyncFor": ("async for", "use a plain for loop"),
    "AsyncWith": ("async with", "programs cannot open resources"),
    "Await": ("await", "neural calls return their result directly"),
    "With": ("a with statement", "programs cannot open resources"),
    "Try": ("try/except", "a failing call ends the frame and is reported; check values with if"),
    "TryStar": ("try/except*", "a failing call ends the frame and is reported; check values with if"),
    "Raise": ("raise", "return an answer instead"),
    "Assert": ("assert", "check the value with if and return an answer"),
    "Global": ("global", "pass values as arguments and return results"),
    "Nonlocal": ("nonlocal", "pass values as arguments and return results"),
    "Yield": ("yield", "build a list instead"),
    "YieldFrom": ("yield from", "build a list instead"),
    "NamedExpr": ("an assignment expression (:=)", "assign on a line of its own"),
    "Starred": ("a starred expression (*x)", "pass or unpack the items explicitly"),
    "Match": ("a match statement", "use if/elif"),
    "MatMult": ("the @ operator", "programs have no matrices"),
}


def _line(node: ast.AST) -> int:
    return int(getattr(node, "lineno", 0) or 0)


def reject(node: ast.AST | None, message: str) -> ProgramError:
    """A ProgramError for `node`: 'line N: message'."""
    line = _line(node) if node is not None else 0
    return ProgramError(f"line {line}: {message}" if line else message, line or None)


def _survey(tree: ast.Module) -> tuple[set[str], set[int], set[int], set[int]]:
    """One pass over the tree: (bound names, annotation node ids, called func node ids,
    subscript slice node ids).

    Bound names ignore scope on purpose: the check exists to catch names that can only mean a
    builtin or a typo, and the runtime namespace is safe whatever slips through. Annotations
    are dropped before the program runs, so their contents are not checked.
    """
    bound: set[str] = set()
    annotations: set[int] = set()
    called: set[int] = set()
    slices: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
        elif isinstance(node, ast.Call):
            called.add(id(node.func))
        elif isinstance(node, ast.Subscript):
            slices.add(id(node.slice))
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
            if node.annotation is not None:
                annotations.add(id(node.annotation))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            if not isinstance(node, ast.ClassDef) and node.returns is not None:
                annotations.add(id(node.returns))
        elif isinstance(node, ast.AnnAssign):
            annotations.add(id(node.annotation))
    return bound, annotations, called, slices


class _Validator:
    """Walks the tree once; the first problem found is raised."""

    def __init__(self, tree: ast.Module) -> None:
        self.bound, self.skip, self.called, self.slices = _survey(tree)

    def walk(self, root: ast.AST) -> Iterator[tuple[ast.AST, ast.AST]]:
        """(node, anchor) for every node under `root`, annotations excluded, iteratively (no
        recursion limit). The anchor is the node itself, or for a node without a position (an
        operator such as `@`, a `with` item) its nearest ancestor that has one, so that every
        message can name a line."""
        stack: list[tuple[ast.AST, ast.AST]] = [(root, root)]
        while stack:
            node, anchor = stack.pop()
            if getattr(node, "lineno", None) is not None:
                anchor = node
            yield node, anchor
            stack.extend((c, anchor) for c in reversed(list(ast.iter_child_nodes(node))) if id(c) not in self.skip)

    def check(self, node: ast.AST) -> None:
        kind = type(node)
        if kind not in _ALLOWED_NODES:
            what, advice = _REJECTED.get(kind.__name__, (f"{kind.__name__} syntax", "use plain Python statements"))
            raise reject(node, f"{what} is not allowed in a program ({advice})")
        handler = getattr(self, "check_" + kind.__name__, None)
        if handler is not None:
            handler(node)

    # ------------------------------------------------------------------------ statements

    def check_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.decorator_list:
            raise reject(node, f"decorators are not allowed in a program (on def {node.name})")
        if getattr(node, "type_params", None):
            raise reject(node, f"type parameters are not allowed in a program (on def {node.name})")
        self.check_binding(node, node.name, "function name")

    def check_arguments(self, node: ast.arguments) -> None:
        for arg in (*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg):
            if arg is not None:
                self.check_binding(arg, arg.arg, "parameter")

    def check_AnnAssign(self, node: ast.AnnAssign) -> None:
        if not isinstance(node.target, ast.Name):
            raise reject(node, "annotated assignment is allowed only to a plain name (x: int = 0)")

    def check_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.slice, ast.Slice) and isinstance(node.ctx, ast.Store):
            raise reject(node, "assigning to a slice (x[a:b] = ...) is not allowed in a program; build a new list")

    def check_Slice(self, node: ast.Slice) -> None:
        if id(node) not in self.slices:
            raise reject(node, "a slice inside a tuple subscript (x[a:b, c]) is not allowed in a program")

    # ----------------------------------------------------------------------- expressions

    def check_Constant(self, node: ast.Constant) -> None:
        if node.value is not None and type(node.value) not in (bool, int, float, str):
            raise reject(
                node,
                f"{type(node.value).__name__} literals are not allowed in a program "
                "(use numbers, strings, True, False, None)",
            )

    def check_keyword(self, node: ast.keyword) -> None:
        if node.arg is None:
            raise reject(node, "**keyword unpacking is not allowed in a program; pass keywords explicitly")
        if node.arg.startswith("_"):
            raise reject(node, f"keyword {node.arg!r} is not allowed: names starting with '_' are reserved")

    def check_Dict(self, node: ast.Dict) -> None:
        if any(key is None for key in node.keys):
            raise reject(node, "**dict unpacking in a dict literal is not allowed in a program; copy items explicitly")

    def check_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            raise reject(node.target, "async comprehensions are not allowed in a program")

    def check_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("_"):
            raise reject(
                node,
                f"attribute {attr!r} is not allowed in a program: attributes starting with '_' "
                "(dunders and private state) belong to the runtime",
            )
        if attr in names.FORMAT_ATTRIBUTES:
            raise reject(
                node,
                f"attribute {attr!r} is not allowed in a program: str.{attr} can read attributes of its "
                'arguments; use an f-string such as f"{x}"',
            )
        if attr not in names.ALLOWED_ATTRIBUTES:
            raise reject(
                node,
                f"attribute {attr!r} is not allowed in a program; use the DSL (find, exists, count, "
                "verify_property, query, answer, best_text_match, read_text, crop, left, right, upper, lower, "
                "width, height, horizontal_center, vertical_center, area, score, label) or common "
                "str/list/dict methods (lower, strip, split, join, append, get, items, ...)",
            )
        if not isinstance(node.ctx, ast.Load):
            raise reject(node, f"assigning or deleting attribute {attr!r} is not allowed in a program; use a variable")
        if attr in names.METHOD_NEURAL_CALLS and id(node) not in self.called and attr not in names.SAFE_METHODS:
            raise reject(
                node,
                f"{attr!r} must be called directly, as in patch.{attr}(...): each neural call in the "
                "source is a call site that the router learns about",
            )

    def check_Name(self, node: ast.Name) -> None:
        name = node.id
        if name.startswith("_") and name != "_":
            raise reject(node, f"name {name!r} is not allowed in a program: names starting with '_' are reserved")
        if name in names.FORBIDDEN_NAMES:
            raise reject(
                node,
                f"{name!r} is not allowed in a program (no dynamic code, introspection or I/O; {_DSL_HINT})",
            )
        if not isinstance(node.ctx, ast.Load):
            self.check_binding(node, name, "variable")
            return
        if name in names.FREE_NEURAL_CALLS and id(node) not in self.called:
            raise reject(node, f"{name!r} must be called directly, as in {name}(...): each call is a call site")
        if name not in self.bound and name not in names.DSL_FUNCTIONS and name not in names.SAFE_BUILTINS:
            raise reject(
                node,
                f"name {name!r} is not defined: it is not a DSL function, a safe builtin "
                f"({', '.join(sorted(names.SAFE_BUILTINS))}) or a name the program assigns",
            )

    def check_binding(self, node: ast.AST, name: str, what: str) -> None:
        if name.startswith("_") and name != "_":
            raise reject(node, f"{what} {name!r} is not allowed in a program: names starting with '_' are reserved")
        if name in names.FORBIDDEN_NAMES:
            raise reject(node, f"{what} {name!r} is not allowed in a program: {name!r} is a forbidden name")
        if name in names.DSL_FUNCTIONS:
            raise reject(node, f"{what} {name!r} would hide the DSL function {name}(); choose another name")


def _is_constant(node: ast.expr) -> bool:
    """Literal data: numbers, strings, and lists/tuples/sets/dicts of them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_constant(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_constant(k) for k in node.keys) and all(_is_constant(v) for v in node.values)
    return False


def _check_top_level(tree: ast.Module, filename: str) -> None:
    """Top level: function definitions, constant assignments and a docstring only."""
    entries: list[ast.FunctionDef] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef):
            if stmt.name == names.ENTRY_POINT:
                entries.append(stmt)
            continue
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            if _is_constant(stmt.value):
                continue
            raise reject(
                stmt,
                "only constant values (numbers, strings, lists of them) may be assigned at the top level "
                "of a program; compute values inside execute_command",
            )
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # a docstring or a comment string
        if isinstance(stmt, ast.Pass):
            continue
        if type(stmt) in _ALLOWED_NODES:
            raise reject(
                stmt,
                f"{type(stmt).__name__.lower()} statement at the top level is not allowed in a program: "
                "only function definitions and constant assignments may appear there; "
                "put the code inside execute_command(image)",
            )
    if not entries:
        raise ProgramError(f"{filename}: the program must define `def {names.ENTRY_POINT}(image):` at the top level")
    if len(entries) > 1:
        raise reject(entries[1], f"{names.ENTRY_POINT} is defined more than once; keep one definition")
    args = entries[0].args
    positional = [*args.posonlyargs, *args.args]
    if len(positional) != 1 or args.vararg or args.kwarg or args.kwonlyargs or args.defaults:
        raise reject(
            entries[0],
            f"{names.ENTRY_POINT} must take exactly one positional parameter, the image: "
            f"def {names.ENTRY_POINT}(image):",
        )
    _check_answers(entries[0])


def _check_answers(entry: ast.FunctionDef) -> None:
    """The entry point returns something, and nothing that can never be an answer (answers.py)."""
    returns = entry_returns(entry)
    if not returns:
        raise reject(entry, f"{names.ENTRY_POINT} has no return statement, so it never answers: {RETURN_ADVICE}")
    for node in returns:
        what = returns_what(node)
        if what is not None:
            raise reject(node, f"{names.ENTRY_POINT} returns {what}: {RETURN_ADVICE}")


def _position(node: ast.AST) -> tuple[int, int, int, int]:
    if getattr(node, "lineno", None) is None:  # the Module: walk() anchors every other node to a line
        return (1 << 30, 0, 0, 0)
    return (
        getattr(node, "lineno", 0) or 0,
        getattr(node, "col_offset", 0) or 0,
        getattr(node, "end_lineno", 0) or 0,
        getattr(node, "end_col_offset", 0) or 0,
    )


def validate(tree: ast.Module, filename: str = "<program>") -> None:
    """Raise ProgramError for the first construct of `tree` that a program may not use.

    "First" is in source order, innermost first on ties (`os.system` reports the undefined
    `os`, not the attribute), so the message points where a reader would look.
    """
    validator = _Validator(tree)
    first: tuple[tuple[int, int, int, int], ProgramError] | None = None
    for node, anchor in validator.walk(tree):
        try:
            validator.check(node)
        except ProgramError as exc:
            if exc.line is None and anchor is not node:  # a node without a position: name its anchor's line
                exc = reject(anchor, str(exc))
            position = _position(anchor)
            if first is None or position < first[0]:
                first = (position, exc)
    if first is not None:
        raise first[1]
    _check_top_level(tree, filename)
