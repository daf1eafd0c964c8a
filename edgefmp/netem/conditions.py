"""Network conditions to impose on a link: added round-trip time, bandwidth caps and loss.

Remote-tier costs depend on the link more than on the server: a 100 ms RTT or a 5 Mbit/s
uplink changes which backend is worth calling. `NetConditions` describes such a link so that
benchmarks and tests measure costs under it instead of assuming them; `ShapingProxy` imposes it.

Written on the command line (and in `EDGEFMP_TEST_NETEM`) as comma-separated `key=value`:

    rtt=100ms,up=5mbit,down=50mbit,loss=1%,loss_mode=stall,rto=200ms,seed=7

Keys: `rtt` (ms or s), `bw` (both directions), `up` / `down` (kbit, mbit, gbit per second),
`loss` (a fraction or a percentage), `loss_mode` (`stall` or `drop`), `rto` (the stall length),
`connect_rtts` (round trips a new connection waits before data flows), `seed`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from edgefmp.errors import ConfigError

LossMode = Literal["stall", "drop"]

_RATE_UNITS = {"bit": 1e-6, "kbit": 1e-3, "mbit": 1.0, "gbit": 1e3, "kbps": 1e-3, "mbps": 1.0, "gbps": 1e3}
_TIME_UNITS = {"ms": 1.0, "s": 1e3, "us": 1e-3}
_KEYS = ("rtt", "bw", "up", "down", "loss", "loss_mode", "rto", "connect_rtts", "seed")


@dataclass(frozen=True)
class NetConditions:
    """A shaped link between the edge (client) and the remote tier (upstream).

    rtt_ms: round-trip time added to every exchange; each direction is delayed by half.
    up_mbps / down_mbps: bandwidth caps client->upstream and upstream->client, shared by all
        connections through the proxy (None = not capped).
    loss: probability that a chunk of data (one read, at most 16 KiB) is "lost". With
        loss_mode "stall" it arrives `rto_ms` late and holds back what follows, as a TCP
        retransmission would; with "drop" the connection is reset, as when a NAT or a radio
        link loses it.
    connect_rtts: round trips a new connection costs before data flows (1 = the TCP
        handshake; 2 adds a TLS 1.3 handshake).
    seed: makes the loss pattern reproducible.
    """

    rtt_ms: float = 0.0
    up_mbps: float | None = None
    down_mbps: float | None = None
    loss: float = 0.0
    loss_mode: LossMode = "stall"
    rto_ms: float = 200.0
    connect_rtts: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("rtt_ms", 0 <= self.rtt_ms <= 60_000, "between 0 and 60000 ms"),
            ("up_mbps", self.up_mbps is None or self.up_mbps > 0, "None or > 0 Mbit/s"),
            ("down_mbps", self.down_mbps is None or self.down_mbps > 0, "None or > 0 Mbit/s"),
            ("loss", 0 <= self.loss <= 1, "a probability in [0, 1]"),
            ("loss_mode", self.loss_mode in ("stall", "drop"), "'stall' or 'drop'"),
            ("rto_ms", 0 <= self.rto_ms <= 60_000, "between 0 and 60000 ms"),
            ("connect_rtts", 0 <= self.connect_rtts <= 10, "an integer from 0 to 10"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"network condition {name}={getattr(self, name)!r} is invalid; expected {expected}")

    @property
    def one_way_s(self) -> float:
        return self.rtt_ms / 2000.0

    @property
    def shaped(self) -> bool:
        """False when these conditions change nothing (a plain relay)."""
        return bool(self.rtt_ms or self.up_mbps or self.down_mbps or self.loss)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """The spec form, e.g. 'rtt=100ms,up=5mbit,loss=0%' (parse() reads it back)."""
        parts = [f"rtt={self.rtt_ms:g}ms"]
        if self.up_mbps is not None:
            parts.append(f"up={self.up_mbps:g}mbit")
        if self.down_mbps is not None:
            parts.append(f"down={self.down_mbps:g}mbit")
        parts.append(f"loss={self.loss * 100:g}%")
        if self.loss:
            parts += [f"loss_mode={self.loss_mode}", f"rto={self.rto_ms:g}ms"]
        return ",".join(parts)

    @classmethod
    def parse(cls, spec: str) -> NetConditions:
        """Read 'rtt=100ms,bw=10mbit,loss=1%' (see the module docstring); '' means no shaping."""
        values: dict[str, Any] = {}
        for raw in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = raw.partition("=")
            key, value = key.strip().lower(), value.strip().lower()
            if not sep or key not in _KEYS:
                raise ConfigError(
                    f"network conditions {spec!r}: cannot read {raw!r}; expected key=value with keys {', '.join(_KEYS)}"
                )
            try:
                if key == "rtt":
                    values["rtt_ms"] = _number(value, _TIME_UNITS, "ms")
                elif key == "rto":
                    values["rto_ms"] = _number(value, _TIME_UNITS, "ms")
                elif key == "bw":
                    values["up_mbps"] = values["down_mbps"] = _number(value, _RATE_UNITS, "mbit")
                elif key in ("up", "down"):
                    values[f"{key}_mbps"] = _number(value, _RATE_UNITS, "mbit")
                elif key == "loss":
                    values["loss"] = float(value[:-1]) / 100 if value.endswith("%") else float(value)
                elif key == "loss_mode":
                    values["loss_mode"] = value
                else:
                    values[key] = int(value)
            except ValueError as exc:
                raise ConfigError(f"network conditions {spec!r}: {key}={value!r}: {exc}") from exc
        return cls(**values)


def _number(text: str, units: dict[str, float], default_unit: str) -> float:
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)", text)
    if match is None:
        raise ValueError(f"expected a number with an optional unit ({', '.join(units)})")
    unit = match.group(2) or default_unit
    if unit not in units:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(units)}")
    return float(match.group(1)) * units[unit]
