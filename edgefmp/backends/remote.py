"""RemoteBackend: a large model on a server, the accurate but costly fallback tier.

It speaks OpenAI-compatible chat (vLLM, llama.cpp, OpenAI) or KServe v2 (KServe, Triton,
`edgefmp serve`); see remote_protocols for the layouts and docs/REMOTE.md for a catalog example.
This module holds the options, wires a protocol to the transport and keeps the circuit breaker;
the transport itself (retries, Retry-After, deadlines, byte counts, the error kinds below) is
RemotePoster in remote_http.

Every failure becomes BackendTimeout, BackendUnavailable or BackendError naming the backend and
URL, so the executor falls back to another backend. Two kinds are told apart because the
server is not to blame for them: `RemoteConfigError` (this client is set up wrong: an unset
key variable, an untrusted TLS certificate, a connection pool too small for the calls in
flight) and `RemoteAnswerError` (the server answered, but not with something usable). Neither
is retried nor counted by the circuit breaker, which stops calling a server that keeps failing.
Configuration problems (those two, and HTTP 4xx refusals) are logged once per backend and kind
at WARNING with the fix, so a remote tier that is never used does not go unnoticed.

The API key is read from the environment variable named by `options.api_key_env` at each call
(so a rotated key is picked up) and sent as a bearer header only; it never enters a log line,
an error message, a trace or a repr.

Errors raised by `infer` carry `bytes_up` / `bytes_down` attributes with the traffic the failed
call still caused (`getattr(exc, "bytes_up", 0)`), for the executor's Attempt cost; results and
errors carry `money` (US dollars, from `options.price`) the same way.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, NoReturn

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgefmp.backends.base import Backend
from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.circuit import CircuitBreaker
from edgefmp.backends.remote_http import (
    RETRY_STATUSES,
    ByteCount,
    RemoteAnswerError,
    RemoteConfigError,
    RemoteHTTPError,
    RemotePoster,
)
from edgefmp.backends.remote_image import SentImage, downscale
from edgefmp.backends.remote_protocols import KServeProtocol, OpenAIProtocol, Protocol
from edgefmp.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from edgefmp.results import RESULT_TYPES, Request, Result

log = logging.getLogger(__name__)


class RemotePrice(BaseModel):
    """What a paid endpoint charges, in US dollars (`options.price`); recorded as Cost.money."""

    model_config = ConfigDict(extra="forbid")

    per_call: float = Field(default=0.0, ge=0, description="USD per answered call")
    per_1k_input_tokens: float = Field(default=0.0, ge=0, description="USD per 1000 prompt tokens (openai)")
    per_1k_output_tokens: float = Field(default=0.0, ge=0, description="USD per 1000 completion tokens (openai)")

    @property
    def per_token(self) -> bool:
        return bool(self.per_1k_input_tokens or self.per_1k_output_tokens)


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
    backoff_max_s: float = Field(
        default=5.0, ge=0, le=300, description="longest pause between attempts, Retry-After included"
    )
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
    ca_bundle: str | None = Field(
        default=None, description="PEM file of the CA (or self-signed certificate) to trust; relative to the catalog"
    )
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    price: RemotePrice | None = Field(default=None, description="what the endpoint charges, for Cost.money")

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


# ----------------------------------------------------------------------------------- backend


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
        sleep: Callable[[float], None] = time.sleep,
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
        if options.price is not None and options.price.per_token and options.protocol != "openai":
            raise ConfigError(
                f"backend {spec.name!r}: options.price per_1k_*_tokens needs protocol: openai "
                "(KServe answers carry no token usage); use price.per_call"
            )
        self._protocol = self._make_protocol(options, model)
        self._url = self._protocol.endpoint(options.url)
        self._circuit = CircuitBreaker(
            options.failure_threshold,
            options.cooldown_s,
            name=f"remote backend {spec.name!r}",
            clock=clock,
        )
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()
        self._last_failure = ""
        self._client = httpx.Client(
            headers={"content-type": "application/json", **options.headers},
            verify=self._tls_verify(spec, options),
            transport=transport,
            limits=httpx.Limits(
                max_connections=options.max_connections,
                max_keepalive_connections=options.max_connections,
            ),
        )
        self._poster = RemotePoster(
            self._client,
            where=self._where,
            timeout_s=options.timeout_s,
            retries=options.retries,
            backoff_s=options.backoff_s,
            backoff_max_s=options.backoff_max_s,
            max_response_bytes=options.max_response_bytes,
            redact=self._redact,
            sleep=sleep,
            max_connections=options.max_connections,
            status_hint=self._status_hint,
        )
        env = options.api_key_env
        if env is not None and not os.environ.get(env, "").strip():
            self._warn_once("api_key_env", self._key_unset_message(env, at_start=True))

    @staticmethod
    def _tls_verify(spec: BackendSpec, options: RemoteOptions) -> ssl.SSLContext | bool:
        if options.ca_bundle is None:
            return options.verify_tls  # True: certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set
        if not options.verify_tls:
            raise ConfigError(
                f"backend {spec.name!r}: options.ca_bundle is set but options.verify_tls is false; "
                "drop one of them (ca_bundle verifies the server against that CA)"
            )
        path = spec.resolve(options.ca_bundle)
        try:
            return ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"backend {spec.name!r}: options.ca_bundle {str(path)!r} is not a readable PEM certificate "
                f"file ({exc}); give the CA certificate (or the server's self-signed one) in PEM"
            ) from exc

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

    def unavailable_reason(self) -> str | None:
        """Why `available()` is False now, for a runtime that has to say so; None when it is True."""
        if self._circuit.available():
            return None
        return self._circuit_message()

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

    # -------------------------------------------------------------------------------- messages

    def _redact(self, text: str) -> str:
        """Scrub the API key from server-provided text (read from the environment, not stored)."""
        env = self.options.api_key_env
        key = os.environ.get(env, "").strip() if env else ""
        return text.replace(key, "[redacted]") if key else text

    def _key_unset_message(self, env: str, *, at_start: bool = False) -> str:
        then = ", so every call will fall back to other backends" if at_start else ""
        return (
            f"{self._where}: environment variable {env} (options.api_key_env) is not set{then}; "
            f"export {env}=<your key> before running"
        )

    def _status_hint(self, status: int) -> str:
        """What to do about an HTTP error status."""
        if status in RETRY_STATUSES:
            return "the server is overloaded or failing; check its load and its log"
        if status in (401, 403):
            env = self.options.api_key_env
            if env is None:
                return "the server wants a key: set options.api_key_env to the NAME of the variable holding it"
            return f"check the key in {env} (options.api_key_env) against the server's"
        if status == 404:
            return "check options.url and options.model (is that model served there?)"
        if status == 413:
            return "the request is larger than the server accepts: lower options.max_side or use kserve_image: jpeg"
        return "check options.protocol and options.model against what the server serves"

    def _circuit_message(self) -> str:
        wait = self._circuit.retry_in_s()
        last = f"; last failure: {self._last_failure}" if self._last_failure else ""
        if wait <= 0:
            return f"{self._where}: circuit half-open, a trial call is in flight; other calls fall back until it ends"
        until = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
        return (
            f"{self._where}: circuit open until {until} (in {wait:.1f} s, options.cooldown_s) after "
            f"{self._circuit.failure_threshold} consecutive failed calls{last}"
        )

    def _warn_once(self, key: str, message: str) -> None:
        """Log a configuration problem at WARNING the first time this backend meets it."""
        with self._warn_lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            log.warning("%s (logged once per backend)", message)
        else:
            log.debug("%s", message)

    def _note(self, exc: BackendError) -> None:
        """Warn once about the errors that need a person: they are never retried away."""
        if isinstance(exc, (RemoteConfigError, RemoteAnswerError)):
            self._warn_once(exc.reason, str(exc))
        elif isinstance(exc, RemoteHTTPError) and not exc.server_fault:
            self._warn_once(f"http-{exc.status}", str(exc))

    # -------------------------------------------------------------------------------- calling

    def _auth_headers(self) -> dict[str, str]:
        env = self.options.api_key_env
        if env is None:
            return {}
        key = os.environ.get(env, "").strip()
        if not key:
            exc = RemoteConfigError(self._key_unset_message(env), "api_key_env")
            self._note(exc)
            raise exc
        return {"authorization": f"Bearer {key}"}

    def infer(self, request: Request) -> Result:
        """Send `request` to the server and parse its answer (see the module docstring)."""
        if request.function not in RESULT_TYPES or request.function != self.function:
            raise BackendError(f"{self._where} serves {self.function!r}, got a {request.function!r} request")
        headers = self._auth_headers()
        if not self._circuit.try_acquire():
            raise BackendUnavailable(self._circuit_message())
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
        except RemoteConfigError as exc:
            self._circuit.release()  # our side is wrong; the server's health is unknown
            self._fail(exc, count)
        except (BackendTimeout, BackendUnavailable) as exc:
            self._record_failure(exc)
            self._fail(exc, count)
        except RemoteHTTPError as exc:
            # 5xx / 429 mean the server is unwell; other statuses mean it is up but refused us.
            if exc.server_fault:
                self._record_failure(exc)
            else:
                self._circuit.record_success()
            self._fail(exc, count)
        except BackendError as exc:
            self._circuit.record_success()  # the server answered; the answer was unusable
            self._fail(exc, count)
        except BaseException:
            self._circuit.release()
            raise
        self._circuit.record_success()
        money = self._money(answer)
        try:
            result = self._protocol.parse(request, answer, image)
        except ValueError as exc:
            err = RemoteAnswerError(
                f"{self._where}: cannot read the {request.function!r} answer: "
                f"{self._redact(str(exc))}; check options.protocol and the served model",
                "unreadable",
            )
            setattr(err, "money", money)  # noqa: B010 - the answer was billed all the same
            self._fail(err, count, cause=exc)
        result.bytes_up = count.up
        result.bytes_down = count.down
        result.sent = self._sent(image)
        result.money = money  # the executor reads it into Cost.money
        log.debug(
            "%s: %s answered in %d attempt(s), %d bytes up, %d down, $%.6f",
            self._where,
            request.function,
            count.attempts,
            count.up,
            count.down,
            money,
        )
        return result

    def _record_failure(self, exc: BackendError) -> None:
        self._last_failure = str(exc).removeprefix(f"{self._where}")[:300].lstrip(" :")
        self._circuit.record_failure()

    def _fail(self, exc: BackendError, count: ByteCount, cause: BaseException | None = None) -> NoReturn:
        """Attach the call's traffic to `exc`, warn if a person must act, and raise it."""
        setattr(exc, "bytes_up", count.up)  # noqa: B010 - documented extra attributes
        setattr(exc, "bytes_down", count.down)  # noqa: B010
        if not hasattr(exc, "money"):
            setattr(exc, "money", 0.0)  # noqa: B010
        self._note(exc)
        if cause is not None:
            raise exc from cause
        raise exc

    def _money(self, answer: Any) -> float:
        """US dollars this answered call cost, from `options.price` and the answer's usage."""
        price = self.options.price
        if price is None:
            return 0.0
        money = price.per_call
        if price.per_token:
            usage = self._protocol.usage(answer)
            if usage is None:
                self._warn_once(
                    "no-usage",
                    f"{self._where}: the answer has no usage.prompt_tokens / completion_tokens, so "
                    "options.price per_1k_*_tokens cannot be applied (only price.per_call is counted); "
                    "check that the server reports usage",
                )
            else:
                money += usage[0] / 1000 * price.per_1k_input_tokens + usage[1] / 1000 * price.per_1k_output_tokens
        return money

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
