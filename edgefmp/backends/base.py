"""The one interface every backend implements.

A backend serves one function (detect, verify, vqa, classify, ocr, llm) of a catalog. The
executor measures latency and energy around `infer`; the backend reports only what it alone
knows (network bytes, inside the result).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from edgefmp.results import Request, Result

if TYPE_CHECKING:
    from edgefmp.backends.catalog import BackendSpec
    from edgefmp.backends.manifest import Manifest


class NoOptions(BaseModel):
    """Options of a backend kind that takes none."""

    model_config = ConfigDict(extra="forbid")


class Backend(ABC):
    """A way to compute one neural function.

    Subclasses set `kind` and `Options` (a pydantic model the catalog's `options:` mapping is
    validated against, so a typo names its field) and implement `infer`.
    """

    kind: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, spec: BackendSpec, options: BaseModel) -> None:
        self.spec = spec
        self.options = options

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def function(self) -> str:
        return self.spec.function

    @property
    def location(self) -> str:
        """'device' or 'remote': a site marked local_only never uses a remote backend."""
        return "device"

    @property
    def manifest(self) -> Manifest | None:
        return None

    @abstractmethod
    def infer(self, request: Request) -> Result:
        """Compute the function on `request`; raise BackendError (or a subclass) on failure."""

    def available(self) -> bool:
        """False while the backend cannot be used (for example a remote circuit is open)."""
        return True

    def unavailable_reason(self) -> str | None:
        """Why `available()` is False now (None while it is True), for the runtime's message."""
        return None

    def warmup(self) -> None:
        """Run once before timing so first-call costs (allocation, JIT) stay out of traces."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for `doctor`, `profile` and run headers."""
        return {"name": self.name, "kind": self.kind, "function": self.function, "location": self.location}

    def close(self) -> None:
        """Release sessions, sockets and threads."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, function={self.function!r})"
