"""RemoteBackend: a large model on a server, the accurate but costly fallback tier.

It speaks OpenAI-compatible chat (vLLM, llama.cpp, OpenAI) or KServe v2 (KServe, Triton,
`edgefmp serve`); see remote_protocols for the layouts and docs/REMOTE.md for a catalog example.

Every failure becomes BackendTimeout, BackendUnavailable or BackendError naming the backend and
URL, so the executor falls back to another backend. A circuit breaker stops calling a server
that keeps failing. The API key is read from the environment variable named by
`options.api_key_env` at each call (so a rotated key is picked up) and sent as a bearer header
only; it never enters a log line, an error message, a trace or a repr.

Errors raised by `infer` carry `bytes_up` / `bytes_down` attributes with the traffic the failed
call still caused (`getattr(exc, "bytes_up", 0)`), for the executor's Attempt cost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgefmp.backends.base import Backend
from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.circuit import CircuitBreaker
from edgefmp.backends.remote_http import ByteCount, JsonPoster, RemoteHTTPError
from edgefmp.backends.remote_image import SentImage, downscale
from edgefmp.backends.remote_protocols import KServeProtocol, OpenAIProtocol, Protocol
from edgefmp.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from edgefmp.results import RESULT_TYPES, Request, Result

log = logging.getLogger(__name__)


class RemoteOptions(BaseModel):
    """The `options:` of a `kind: remote` catalog entry."""

    # A pasted key must never be echoed back by a validation error.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    protocol: Literal["openai", "kserve"] = "openai"
    url: str = Field(description="base URL: http://host:8000/v1 for OpenAI, http://host:8000 for KServe")
    model: str | None = Field(default=None, description="model name; defaults to the entry's `model`")
    api_key_env: str | None = Field(default=None, description="NAME of the environment variable holding the key")
    timeout_s: float = Field(default=20.0, gt=0, le=600, description="deadline of one attempt")
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts after a retriable failure")
    backoff_s: float = Field(default=0.2, ge=0, le=60, description="base of the exponential backoff")
    backoff_max_s: float = Field(default=5.0, ge=0, le=300)
    failure_threshold: int = Field(default=5, ge=1, description="consecutive failed calls that open the circuit")
    cooldown_s: float = Field(default=30.0, ge=0, description="how long an open circuit refuses calls")
    max_side: int | None = Field(default=768, ge=16, description="downscale so the longer side is at most this")
    jpeg_quality: int = Field(default=85, ge=1, le=100)
    kserve_image: Literal["uint8", "jpeg"] = "uint8"
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    logprobs: bool = Field(default=False, description="ask for logprobs; the first token's gives the confidence")
    max_connections: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="pooled connections; at least the frames in flight when remote calls overlap",
    )
    headers: dict[str, str] = Field(default_factory=dict, repr=False, description="extra HTTP headers")
    verify_tls: bool = True
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not (v.replace("_", "a").isalnum() and v.isascii() and not v[0].isdigit()):
            raise ValueError(
                "api_key_env takes the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself"
            )
        return v


class RemoteBackend(Backend):
    """A model behind HTTP; one pooled httpx.Client per backend, closed by `close()`."""

    kind = "remote"
    Options = RemoteOptions

    def __init__(
        self,
        spec: BackendSpec,
        options: BaseModel,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(spec, options)
        if not isinstance(options, RemoteOptions):
            options = RemoteOptions.model_validate(options.model_dump())
        self.options: RemoteOptions = options
        model = options.model or spec.model
        if not model:
            raise ConfigError(f"backend {spec.name!r}: kind 'remote' needs options.model (the served model name)")
        self.model = model
        self._where = f"remote backend {spec.name!r} ({options.url})"
        self._protocol = self._make_protocol(options, model)
        self._url = self._protocol.endpoint(options.url)
        self._circuit = CircuitBreaker(
            options.failure_threshold,
            options.cooldown_s,
            name=f"remote backend {spec.name!r}",
            clock=clock,
        )
        self._client = httpx.Client(
            headers={"content-type": "application/json", **options.headers},
            verify=options.verify_tls,
            transport=transport,
            limits=httpx.Limits(
                max_connections=options.max_connections,
                max_keepalive_connections=options.max_connections,
            ),
        )
        self._poster = JsonPoster(
            self._client,
            where=self._where,
            timeout_s=options.timeout_s,
            retries=options.retries,
            backoff_s=options.backoff_s,
            backoff_max_s=options.backoff_max_s,
            max_response_bytes=options.max_response_bytes,
            redact=self._redact,
        )

    def _make_protocol(self, options: RemoteOptions, model: str) -> Protocol:
        if options.protocol == "kserve":
            return KServeProtocol(
                model=model,
                jpeg_quality=options.jpeg_quality,
                where=self._where,
                image_format=options.kserve_image,
            )
        return OpenAIProtocol(
            model=model,
            jpeg_quality=options.jpeg_quality,
            where=self._where,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            logprobs=options.logprobs,
        )

    # ------------------------------------------------------------------------------ interface

    @property
    def location(self) -> str:
        return "remote"

    def available(self) -> bool:
        return self._circuit.available()

    @property
    def circuit_state(self) -> str:
        return self._circuit.state

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "protocol": self.options.protocol,
            "url": self.options.url,
            "model": self.model,
            "api_key_env": self.options.api_key_env,
            "extra_headers": sorted(self.options.headers),
            "circuit": self._circuit.state,
        }

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return (
            f"RemoteBackend(name={self.name!r}, function={self.function!r}, "
            f"protocol={self.options.protocol!r}, url={self.options.url!r})"
        )

    # -------------------------------------------------------------------------------- calling

    def _redact(self, text: str) -> str:
        """Scrub the API key from server-provided text (read from the environment, not stored)."""
        env = self.options.api_key_env
        key = os.environ.get(env, "").strip() if env else ""
        return text.replace(key, "[redacted]") if key else text

    def _auth_headers(self) -> dict[str, str]:
        env = self.options.api_key_env
        if env is None:
            return {}
        key = os.environ.get(env, "").strip()
        if not key:
            raise BackendUnavailable(
                f"{self._where}: environment variable {env} (options.api_key_env) is not set; "
                f"export {env}=<your key> before running"
            )
        return {"authorization": f"Bearer {key}"}

    def infer(self, request: Request) -> Result:
        """Send `request` to the server and parse its answer (see the module docstring)."""
        if request.function not in RESULT_TYPES or request.function != self.function:
            raise BackendError(f"{self._where} serves {self.function!r}, got a {request.function!r} request")
        headers = self._auth_headers()
        if not self._circuit.try_acquire():
            raise BackendUnavailable(
                f"{self._where}: circuit open after {self._circuit.failure_threshold} "
                f"consecutive failures; next trial in {self._circuit.retry_in_s():.1f} s "
                "(options.cooldown_s)"
            )
        try:
            image_array = getattr(request, "image", None)
            image = None if image_array is None else downscale(image_array, self.options.max_side)
            body = self._protocol.build(request, image)
        except BaseException:
            self._circuit.release()  # nothing was sent: the server's health is unknown
            raise
        count = ByteCount()
        try:
            answer = self._poster.post(self._url, body, headers, count)
        except (BackendTimeout, BackendUnavailable) as exc:
            self._circuit.record_failure()
            self._attach_bytes(exc, count)
            raise
        except RemoteHTTPError as exc:
            # 5xx / 429 mean the server is unwell; other statuses mean it is up but refused us.
            if exc.server_fault:
                self._circuit.record_failure()
            else:
                self._circuit.record_success()
            self._attach_bytes(exc, count)
            raise
        except BackendError as exc:
            self._circuit.record_success()  # the server answered; the answer was unusable
            self._attach_bytes(exc, count)
            raise
        except BaseException:
            self._circuit.release()
            raise
        self._circuit.record_success()
        try:
            result = self._protocol.parse(request, answer, image)
        except ValueError as exc:
            err = BackendError(
                f"{self._where}: cannot read the {request.function!r} answer: "
                f"{self._redact(str(exc))}; check options.protocol and the served model"
            )
            self._attach_bytes(err, count)
            raise err from exc
        result.bytes_up = count.up
        result.bytes_down = count.down
        result.sent = self._sent(image)
        log.debug(
            "%s: %s answered in %d attempt(s), %d bytes up, %d down",
            self._where,
            request.function,
            count.attempts,
            count.up,
            count.down,
        )
        return result

    def _sent(self, image: SentImage | None) -> dict[str, Any]:
        """What left the device, for the trace: the upload settings behind `bytes_up`."""
        sent: dict[str, Any] = {"protocol": self.options.protocol}
        if image is not None:
            jpeg = self.options.protocol == "openai" or self.options.kserve_image == "jpeg"
            sent["image_hw"] = [image.height, image.width]
            sent["max_side"] = self.options.max_side
            sent["encoding"] = "jpeg" if jpeg else "uint8"
            if jpeg:
                sent["jpeg_quality"] = self.options.jpeg_quality
        return sent

    @staticmethod
    def _attach_bytes(exc: BackendError, count: ByteCount) -> None:
        setattr(exc, "bytes_up", count.up)  # noqa: B010 - documented extra attributes
        setattr(exc, "bytes_down", count.down)  # noqa: B010
