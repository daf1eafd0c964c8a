"""Settings of one `edgefmp serve` process (typed, passed to `create_app`, never global)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from edgefmp.errors import ConfigError

DEFAULT_MODEL = "edgefmp"
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class ServeSettings:
    """How the server listens and what it accepts.

    host / port: where to listen; 127.0.0.1 unless the operator says otherwise.
    token: the bearer token every request but the health probes must carry (None = open).
        It comes from an environment variable (`from_env`); it is hidden from repr and logs.
    max_request_bytes: larger bodies are refused with 413 (a 768 px uint8 KServe image as
        JSON is about 6 MB; as JPEG about 100 kB).
    max_image_pixels: decoded images larger than this are refused (decompression bombs).
    default_model: the model name that routes each function to the catalog's most capable
        backend (clients that do not care which backend answers).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    default_model: str = DEFAULT_MODEL

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"serve: port {self.port} is out of range; expected 0..65535 (0 = any free port)")
        if self.max_request_bytes < 1024:
            raise ConfigError(f"serve: max_request_bytes={self.max_request_bytes} is too small; expected >= 1024")
        if self.max_image_pixels < 1:
            raise ConfigError("serve: max_image_pixels must be >= 1")
        if self.token is not None and not self.token.strip():
            raise ConfigError("serve: the bearer token is empty; set the variable to a non-empty value")
        if not self.default_model.strip():
            raise ConfigError("serve: default_model must be a non-empty name")

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @staticmethod
    def token_from_env(name: str | None) -> str | None:
        """The token held by environment variable `name` (None when no name is given)."""
        if name is None:
            return None
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"serve: environment variable {name} (--token-env) is not set; "
                f"export {name}=<token> or leave --token-env out"
            )
        return value
