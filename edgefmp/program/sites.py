"""Call sites: the textual neural calls of a program, each with a stable id.

A site id is `<method>@<line>:<col>` where line (1-based) and col (0-based, as Python's ast
counts it) point at the method NAME, not at the start of the call expression, so chained
calls such as `image.find("a")[0].find("b")` on one line still get distinct ids.

Sites are found syntactically: any `x.find(...)`, `x.count(...)`... is a site, because the
receiver's type is only known at run time. A site that turns out to be `some_list.count(3)`
simply never reaches the caller. Receivers that are obviously not patches (literals,
comprehensions, f-strings) are skipped.
"""

from __future__ import annotations

import ast

from edgefmp.program import allowlist as names
from edgefmp.program.api import NEURAL_CALLS, CallSite

_NOT_A_PATCH = (
    ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp,
    ast.DictComp, ast.GeneratorExp, ast.JoinedStr,
)  # fmt: skip

_MAX_TEXT = 120


def site_of(call: ast.Call) -> tuple[str, int, int] | None:
    """(method, line, col) when `call` is a neural call site, else None."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in names.METHOD_NEURAL_CALLS:
        if isinstance(func.value, _NOT_A_PATCH):
            return None
        line = func.end_lineno or func.lineno
        col = (func.end_col_offset or 0) - len(func.attr)
        return func.attr, line, col
    if isinstance(func, ast.Name) and func.id in names.FREE_NEURAL_CALLS:
        return func.id, func.lineno, func.col_offset
    return None


def site_id_of(call: ast.Call) -> str | None:
    """The site id of `call`, or None when it is not a neural call."""
    found = site_of(call)
    return None if found is None else f"{found[0]}@{found[1]}:{found[2]}"


def _segment(lines: list[bytes], node: ast.AST) -> str:
    """The source text of `node` (ast offsets are UTF-8 byte offsets), whitespace collapsed.

    Lines are split once per program: ast.get_source_segment re-splits the whole source on
    every call, which a hostile program with thousands of calls would turn quadratic.
    """
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1  # type: ignore[attr-defined]
    start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
    if first == last:
        chunk = lines[first][start:end]
    else:
        chunk = b" ".join([lines[first][start:], *lines[first + 1 : last], lines[last][:end]])
    return " ".join(chunk.decode("utf-8", "replace").split())


def collect_sites(tree: ast.Module, source: str) -> dict[str, CallSite]:
    """Every neural call site of `tree`, in source order."""
    lines = [line.encode("utf-8") for line in source.splitlines()]
    found: list[CallSite] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        position = site_of(node)
        if position is None:
            continue
        method, line, col = position
        text = _segment(lines, node) or method
        if len(text) > _MAX_TEXT:
            text = text[: _MAX_TEXT - 3] + "..."
        found.append(CallSite(f"{method}@{line}:{col}", method, NEURAL_CALLS[method], line, col, text))
    found.sort(key=lambda site: (site.line, site.col))
    return {site.site_id: site for site in found}
