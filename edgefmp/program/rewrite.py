"""Rewrite a validated program so every unit of work passes through a runtime guard.

- every call `f(a, k=v)` -> `__efmp_call(site_id_or_None, line, f, a, k=v)`;
- every loop body and comprehension iteration starts with `__efmp_tick(line)`;
- every binary operator and augmented assignment goes through `__efmp_binop` /
  `__efmp_augop`, which refuse huge integers and sequences before computing them;
- comparisons, dict/set keys, subscripts, slices and f-string parts go through helpers that
  measure containers first (== , hash and repr walk them in C, beyond any budget's reach);
- annotations are dropped (they would be evaluated, and they are not checked).

Line numbers are kept, so tracebacks and budget errors name the program's own lines.
"""

from __future__ import annotations

import ast
from typing import Any

from edgefmp.program import allowlist as names
from edgefmp.program.answers import entry_returns
from edgefmp.program.sites import site_id_of

_BINOP_SYMBOLS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
    ast.BitAnd: "&",
}  # fmt: skip

_COMPARE_SYMBOLS: dict[type, str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip


def _name(identifier: str, ctx: ast.expr_context | None = None) -> ast.Name:
    return ast.Name(id=identifier, ctx=ctx or ast.Load())


def _helper(helper: str, node: ast.AST, *args: ast.expr, keywords: list[ast.keyword] | None = None) -> ast.Call:
    call = ast.Call(func=_name(helper), args=list(args), keywords=keywords or [])
    return ast.copy_location(call, node)


def _const(value: Any) -> ast.Constant:
    return ast.Constant(value=value)


def _line(node: ast.AST) -> ast.Constant:
    return _const(int(getattr(node, "lineno", 0) or 0))


def _needs_key_check(node: ast.expr) -> bool:
    return not isinstance(node, ast.Constant)


class _Rewriter(ast.NodeTransformer):
    def __init__(self) -> None:
        self._temps = 0

    def _temp(self) -> str:
        self._temps += 1
        return f"{names.HELPER_PREFIX}t{self._temps}"

    # -------------------------------------------------------------------------- calls

    def visit_Call(self, node: ast.Call) -> ast.AST:
        site = site_id_of(node)
        self.generic_visit(node)
        return _helper(
            names.HELPER_CALL, node, _const(site), _line(node), node.func, *node.args, keywords=node.keywords
        )

    # -------------------------------------------------------------------------- loops

    def _tick(self, node: ast.AST) -> ast.Expr:
        return ast.copy_location(ast.Expr(value=_helper(names.HELPER_TICK, node, _line(node))), node)

    def visit_For(self, node: ast.For) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, self._tick(node))
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, self._tick(node))
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.ifs.insert(0, _helper(names.HELPER_TICK, node.target, _line(node.target)))
        return node

    # ---------------------------------------------------------------------- operators

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        op = _const(_BINOP_SYMBOLS[type(node.op)])
        return _helper(names.HELPER_BINOP, node, op, node.left, node.right, _line(node))

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        self.generic_visit(node)
        op = _const(_BINOP_SYMBOLS[type(node.op)])
        target = node.target
        if isinstance(target, ast.Name):
            value = _helper(names.HELPER_AUGOP, node, op, _name(target.id), node.value, _line(node))
            return ast.copy_location(ast.Assign(targets=[_name(target.id, ast.Store())], value=value), node)
        if isinstance(target, ast.Subscript):
            # d[k] += v evaluates d and k once: keep them in temporaries.
            obj, key = self._temp(), self._temp()
            load = ast.Subscript(value=_name(obj), slice=_name(key), ctx=ast.Load())
            store = ast.Subscript(value=_name(obj), slice=_name(key), ctx=ast.Store())
            value = _helper(names.HELPER_AUGOP, node, op, load, node.value, _line(node))
            statements = [
                ast.Assign(targets=[_name(obj, ast.Store())], value=target.value),
                ast.Assign(targets=[_name(key, ast.Store())], value=target.slice),
                ast.Assign(targets=[store], value=value),
            ]
            return [ast.copy_location(s, node) for s in statements]
        raise AssertionError(
            f"line {node.lineno}: the validator let through an augmented assignment to {type(target).__name__}"
        )

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        symbols = [_COMPARE_SYMBOLS[type(op)] for op in node.ops]
        if len(symbols) == 1:
            if symbols[0] in ("is", "is not"):
                return node
            return _helper(names.HELPER_COMPARE, node, _const(symbols[0]), node.left, node.comparators[0], _line(node))
        # a < b < c: later operands are thunks so they run once, and only when needed.
        thunks: list[ast.expr] = [
            ast.copy_location(
                ast.Lambda(
                    args=ast.arguments(
                        posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
                    ),
                    body=comparator,
                ),
                comparator,
            )
            for comparator in node.comparators
        ]
        ops = ast.Tuple(elts=[_const(s) for s in symbols], ctx=ast.Load())
        rights = ast.Tuple(elts=thunks, ctx=ast.Load())
        return _helper(names.HELPER_COMPARE_CHAIN, node, _line(node), node.left, ops, rights)

    # --------------------------------------------------------------- keys and slices

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.slice, ast.Slice):
            if isinstance(node.ctx, ast.Load):
                part = node.slice
                bounds = [b if b is not None else _const(None) for b in (part.lower, part.upper, part.step)]
                return _helper(names.HELPER_SLICE, node, node.value, *bounds, _line(node))
            return node
        if _needs_key_check(node.slice):
            node.slice = _helper(names.HELPER_KEY, node.slice, node.slice, _line(node))
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.keys = [
            _helper(names.HELPER_KEY, k, k, _line(k)) if k is not None and _needs_key_check(k) else k for k in node.keys
        ]
        return node

    def visit_Set(self, node: ast.Set) -> ast.AST:
        self.generic_visit(node)
        node.elts = [_helper(names.HELPER_KEY, e, e, _line(e)) if _needs_key_check(e) else e for e in node.elts]
        return node

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        self.generic_visit(node)
        node.key = _helper(names.HELPER_KEY, node.key, node.key, _line(node.key))
        return node

    def visit_SetComp(self, node: ast.SetComp) -> ast.AST:
        self.generic_visit(node)
        node.elt = _helper(names.HELPER_KEY, node.elt, node.elt, _line(node.elt))
        return node

    # ----------------------------------------------------------------------- strings

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        spec: ast.expr = node.format_spec if node.format_spec is not None else _const("")
        node.value = _helper(names.HELPER_FORMAT, node, node.value, _const(node.conversion), spec, _line(node))
        node.conversion = -1
        node.format_spec = None
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        self.generic_visit(node)
        return _helper(names.HELPER_JOINED, node, node, _line(node))

    # ------------------------------------------------------------------ annotations

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None
        self.generic_visit(node)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        value = self.visit(node.value)
        return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)


def _check_answers(tree: ast.Module) -> None:
    """Every `return x` of execute_command becomes `return __efmp_answer(x, line)`, and a
    final `return __efmp_answer(None, last_line, True)` catches a body that runs off its end,
    so a frame that answers a dict, None or nothing fails naming the line (answers.py)."""
    for entry in tree.body:
        if isinstance(entry, ast.FunctionDef) and entry.name == names.ENTRY_POINT:
            for node in entry_returns(entry):
                value = node.value if node.value is not None else _const(None)
                node.value = _helper(names.HELPER_ANSWER, node, value, _line(node))
            last = entry.body[-1]
            end_line = _const(int(getattr(last, "end_lineno", None) or last.lineno))
            end = ast.Return(value=_helper(names.HELPER_ANSWER, last, _const(None), end_line, _const(True)))
            entry.body.append(ast.copy_location(end, last))


def rewrite(tree: ast.Module) -> ast.Module:
    """The guarded version of a validated tree (the input tree is modified in place)."""
    result = _Rewriter().visit(tree)
    assert isinstance(result, ast.Module)
    _check_answers(result)
    return ast.fix_missing_locations(result)
