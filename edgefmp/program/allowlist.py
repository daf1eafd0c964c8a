"""Every name a program may use, in one place.

The validator, the rewriter and the runtime all read these sets, so what the validator lets
through and what the runtime provides cannot drift apart. Anything not listed here is
rejected before a program runs: programs may come from an LLM and are hostile until checked.
"""

from __future__ import annotations

from edgefmp.program.api import NEURAL_CALLS

ENTRY_POINT = "execute_command"

# Neural calls written as a free function (`llm_query(...)`); the rest are ImagePatch methods.
FREE_NEURAL_CALLS: frozenset[str] = frozenset({"llm_query"})
METHOD_NEURAL_CALLS: frozenset[str] = frozenset(NEURAL_CALLS) - FREE_NEURAL_CALLS

# ImagePatch: methods and read-only attributes (coordinates are frame pixels, origin top-left).
DSL_METHODS: frozenset[str] = METHOD_NEURAL_CALLS | {"crop"}
DSL_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "left",
        "right",
        "upper",
        "lower",
        "width",
        "height",
        "horizontal_center",
        "vertical_center",
        "area",
        "score",
        "label",
    }
)

# Harmless methods of str, list and dict that generated programs commonly use. Each one is
# either linear in its input or size-checked by the runtime before it runs (guards.py).
SAFE_METHODS: frozenset[str] = frozenset(
    {
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "split",
        "startswith",
        "endswith",
        "replace",
        "join",
        "title",
        "capitalize",
        "isdigit",
        "isalpha",
        "append",
        "extend",
        "pop",
        "index",
        "count",
        "find",
        "get",
        "items",
        "keys",
        "values",
        "sort",
        "reverse",
    }
)

ALLOWED_ATTRIBUTES: frozenset[str] = DSL_METHODS | DSL_ATTRIBUTES | SAFE_METHODS

# str.format / format_map resolve `{0.attr}` and `{0[key]}` inside the string, out of the
# validator's sight; f-strings are checked node by node instead.
FORMAT_ATTRIBUTES: frozenset[str] = frozenset({"format", "format_map"})

# Free functions of the DSL; a program may call them but never rebind them.
DSL_FUNCTIONS: frozenset[str] = frozenset({"llm_query", "bool_to_yesno", "distance"})

# Builtins a program may use (see safe_builtins.py for the checked versions). `print` is a
# no-op that logs at DEBUG: generated programs often print while they work, and failing the
# frame for that would be worse than ignoring it.
SAFE_BUILTINS: frozenset[str] = frozenset(
    {
        "len",
        "sorted",
        "min",
        "max",
        "sum",
        "range",
        "abs",
        "round",
        "int",
        "float",
        "str",
        "bool",
        "list",
        "dict",
        "tuple",
        "set",
        "enumerate",
        "zip",
        "any",
        "all",
        "reversed",
        "isinstance",
        "print",
    }
)

# Names that reach dynamic code, introspection or I/O. They are reported as forbidden (not
# merely undefined) so an LLM that wrote them gets a message it can act on.
FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "globals",
        "locals",
        "vars",
        "dir",
        "type",
        "object",
        "super",
        "id",
        "input",
        "breakpoint",
        "memoryview",
        "bytearray",
        "bytes",
        "help",
        "iter",
        "next",
        "map",
        "filter",
        "format",
        "repr",
        "classmethod",
        "staticmethod",
        "property",
        "callable",
        "issubclass",
        "exit",
        "quit",
        "ImagePatch",
    }
)

# Runtime helpers the rewriter inserts. Their names start with '_', which the validator
# forbids in program source, so a program can never call or rebind them.
HELPER_PREFIX = "__efmp_"
HELPER_CALL = HELPER_PREFIX + "call"
HELPER_TICK = HELPER_PREFIX + "tick"
HELPER_BINOP = HELPER_PREFIX + "binop"
HELPER_AUGOP = HELPER_PREFIX + "augop"
HELPER_COMPARE = HELPER_PREFIX + "compare"
HELPER_COMPARE_CHAIN = HELPER_PREFIX + "compare_chain"
HELPER_KEY = HELPER_PREFIX + "key"
HELPER_FORMAT = HELPER_PREFIX + "format"
HELPER_JOINED = HELPER_PREFIX + "joined"
HELPER_SLICE = HELPER_PREFIX + "slice"
HELPER_ANSWER = HELPER_PREFIX + "answer"
