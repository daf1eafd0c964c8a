"""Which backend answers a request: served model names and the functions behind them.

Every backend of the catalog is served under its own name (the KServe model name and the
OpenAI `model`). One name may serve several functions (a classical backend listed under
detect, verify and vqa): the request says which with its `function` input, or the name serves
only one. `settings.default_model` ("edgefmp") routes each function to the catalog's most
capable backend (the last of its list, the catalog being ordered cheapest first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgefmp.backends.base import Backend
from edgefmp.backends.catalog import Catalog
from edgefmp.errors import ConfigError
from edgefmp.results import FUNCTIONS
from edgefmp.serve.errors import RequestRejected, bad_request


@dataclass
class ServedModel:
    """A served name and its backend per function."""

    name: str
    backends: dict[str, Backend] = field(default_factory=dict)
    default: bool = False

    @property
    def functions(self) -> list[str]:
        return [f for f in FUNCTIONS if f in self.backends]

    def backend(self, function: str | None) -> tuple[str, Backend]:
        """The (function, backend) for a request; None asks for the model's only function."""
        if function is None:
            if len(self.backends) == 1:
                return next(iter(self.backends.items()))
            raise bad_request(
                f"model {self.name!r} serves several functions ({', '.join(self.functions)}); "
                "say which with the 'function' input",
                "function",
            )
        if function not in FUNCTIONS:
            raise bad_request(f"unknown function {function!r}; available: {', '.join(FUNCTIONS)}", "function")
        backend = self.backends.get(function)
        if backend is None:
            raise bad_request(
                f"model {self.name!r} does not serve {function!r}; it serves: {', '.join(self.functions)}",
                "function",
            )
        return function, backend


class ModelTable:
    """The served models of one catalog, by name."""

    def __init__(self, catalog: Catalog, default_model: str) -> None:
        self._models: dict[str, ServedModel] = {}
        for function in catalog.functions:
            for backend in catalog.backends(function):
                model = self._models.setdefault(backend.name, ServedModel(backend.name))
                model.backends[function] = backend
        if default_model in self._models:
            raise ConfigError(
                f"serve: the default model name {default_model!r} is also a backend name in catalog "
                f"{catalog.spec.name!r}; pick another --default-model"
            )
        if not self._models:
            raise ConfigError(f"serve: catalog {catalog.spec.name!r} has no backends to serve")
        self.default = ServedModel(
            default_model, {fn: catalog.backends(fn)[-1] for fn in catalog.functions}, default=True
        )
        self._models[default_model] = self.default

    def names(self) -> list[str]:
        return list(self._models)

    def models(self) -> list[ServedModel]:
        return list(self._models.values())

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def get(self, name: str) -> ServedModel:
        model = self._models.get(name)
        if model is None:
            raise RequestRejected(
                404, f"unknown model {name[:100]!r}; served: {', '.join(self.names())}", param="model"
            )
        return model
