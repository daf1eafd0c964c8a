"""A backend backed by a Python callable: the documented way to plug a model edgefmp has no
kind for, and to test programs and routers without hardware.

```python
from edgefmp.backends.callable import CallableBackend
from edgefmp.results import Verdict
always_yes = CallableBackend.wrap("always-yes", "verify", lambda req: Verdict(value=True, confidence=0.9))
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from edgefmp.backends.base import Backend
from edgefmp.errors import BackendError, ConfigError
from edgefmp.results import RESULT_TYPES, Request, Result


class CallableOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    fn: Any = None
    location: str = "device"


class CallableBackend(Backend):
    """Calls `options.fn(request)`; a wrong return type is a BackendError, so fallback applies."""

    kind = "callable"
    Options = CallableOptions

    def __init__(self, spec: Any, options: BaseModel) -> None:
        super().__init__(spec, options)
        fn = getattr(options, "fn", None)
        if not callable(fn):
            raise ConfigError(f"backend {spec.name!r}: kind 'callable' needs options.fn, a Python callable")
        self._fn: Callable[[Request], Result] = fn

    @classmethod
    def wrap(
        cls, name: str, function: str, fn: Callable[[Request], Result], location: str = "device", **spec: Any
    ) -> CallableBackend:
        from edgefmp.backends.catalog import BackendSpec

        backend_spec = BackendSpec(name=name, kind=cls.kind, function=function, **spec)
        return cls(backend_spec, CallableOptions(fn=fn, location=location))

    @property
    def location(self) -> str:
        return str(getattr(self.options, "location", "device"))

    def infer(self, request: Request) -> Result:
        result = self._fn(request)
        expected = RESULT_TYPES[self.function]
        if not isinstance(result, expected):
            raise BackendError(
                f"backend {self.name!r} returned {type(result).__name__}; function {self.function!r} "
                f"needs {expected.__name__}"
            )
        return result
