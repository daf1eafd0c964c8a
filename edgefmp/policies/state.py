"""Saving and loading a policy's learned state: JSON + npz, versioned, atomic, never pickle.

One state is one file, so that one `os.replace` commits it whole:

- `*.json`: the state tree as JSON; numpy arrays inline as
  `{"__ndarray__": {"dtype": "<f8", "shape": [4, 16], "b64": "..."}}` (raw little-endian
  bytes, so floats round-trip bit for bit, NaN included).
- anything else (`*.npz`, the default for `edgefmp run --state`): a numpy `.npz` archive
  whose member `__state_json__` holds the same JSON tree (UTF-8 bytes) with arrays replaced
  by `{"__ndarray__": "a0"}`, and members `a0`, `a1`, ... holding the arrays. Any tool that
  reads npz and JSON reads it; it is loaded with `allow_pickle=False`.

The top of the tree is `{"format": "edgefmp-policy-state", "version": 1, "policy": name,
"saved_at": unix seconds, "state": policy.state_dict()}`.

Writes go to a temporary file in the same folder, are flushed and fsync'ed, then
`os.replace`d over the target and the folder is fsync'ed: a process killed at any point
(SIGKILL included) leaves either the previous state or the new one, never a torn file.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.errors import PolicyError
from edgefmp.files import atomic_write_bytes
from edgefmp.policies.base import Policy

log = logging.getLogger(__name__)

STATE_FORMAT = "edgefmp-policy-state"
STATE_VERSION = 1
_JSON_MEMBER = "__state_json__"
_ARRAY_TAG = "__ndarray__"


def _encode(obj: Any, arrays: list[np.ndarray] | None, where: str) -> Any:
    """JSON-able tree of `obj`; arrays go to `arrays` (npz) or inline base64 (None)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise PolicyError(f"policy state {where}: object arrays cannot be saved without pickle")
        if arrays is not None:
            arrays.append(obj)
            return {_ARRAY_TAG: f"a{len(arrays) - 1}"}
        arr = np.ascontiguousarray(obj)
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        return {
            _ARRAY_TAG: {
                "dtype": dtype.str,
                "shape": list(arr.shape),
                "b64": base64.b64encode(arr.astype(dtype, copy=False).tobytes()).decode("ascii"),
            }
        }
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise PolicyError(f"policy state {where}: key {k!r} is not a string")
            out[k] = _encode(v, arrays, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise PolicyError(f"policy state {where}: cannot save a {type(obj).__name__} (JSON values and numpy arrays only)")


def _decode(obj: Any, arrays: Any, where: str) -> Any:
    if isinstance(obj, dict):
        if _ARRAY_TAG in obj and len(obj) == 1:
            ref = obj[_ARRAY_TAG]
            if isinstance(ref, str):
                if arrays is None or ref not in arrays:
                    raise ValueError(f"{where}: array member {ref!r} is missing")
                return np.array(arrays[ref])
            raw = base64.b64decode(ref["b64"])
            return np.frombuffer(raw, dtype=np.dtype(ref["dtype"])).reshape(ref["shape"]).copy()
        return {k: _decode(v, arrays, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def write_state(state: dict[str, Any], path: str | Path, policy: str = "") -> None:
    """Atomically write a state tree (see the module docstring for the format)."""
    path = Path(path)
    header: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "policy": policy,
        "saved_at": time.time(),
    }
    if path.suffix == ".json":
        header["state"] = _encode(state, None, "state")
        data = json.dumps(header, separators=(",", ":")).encode("utf-8")
    else:
        arrays: list[np.ndarray] = []
        header["state"] = _encode(state, arrays, "state")
        members = {f"a{i}": a for i, a in enumerate(arrays)}
        members[_JSON_MEMBER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **members)  # type: ignore[arg-type]
        data = buf.getvalue()
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot write the policy state: {exc}") from exc


def read_state(path: str | Path) -> dict[str, Any]:
    """Read a state file written by `write_state`; returns the whole header with `state`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy state file") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy state: {exc}") from exc
    try:
        if path.suffix == ".json":
            header = json.loads(raw.decode("utf-8"))
            arrays = None
        else:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                if _JSON_MEMBER not in npz.files:
                    raise ValueError(f"the archive has no {_JSON_MEMBER!r} member")
                arrays = {k: npz[k] for k in npz.files if k != _JSON_MEMBER}
                header = json.loads(npz[_JSON_MEMBER].tobytes().decode("utf-8"))
        if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
            raise ValueError(f"not an {STATE_FORMAT} file")
        if header.get("version") != STATE_VERSION:
            raise PolicyError(
                f"{path}: policy state version {header.get('version')!r} is not supported "
                f"(this edgefmp reads version {STATE_VERSION})"
            )
        header["state"] = _decode(header.get("state"), arrays, "state")
    except PolicyError:
        raise
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
        raise PolicyError(f"{path}: not a readable policy state file: {exc}") from exc
    return header


def save_policy_state(policy: Policy, path: str | Path) -> None:
    """Atomically save `policy.state_dict()` to `path` (`.json`, else npz)."""
    write_state(policy.state_dict(), path, policy=policy.name)
    log.debug("saved %s state to %s", policy.name, path)


def load_policy_state(policy: Policy, path: str | Path) -> dict[str, Any]:
    """Load `path` into `policy`; errors name the file. Returns the file's header."""
    header = read_state(path)
    saved = header.get("policy") or ""
    if saved and policy.name and saved != policy.name:
        raise PolicyError(f"{path}: holds the state of policy {saved!r}, not of {policy.name!r}")
    try:
        policy.load_state_dict(header["state"])
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise PolicyError(f"{path}: the saved state does not fit policy {policy.name!r}: {exc!r}") from exc
    log.debug("resumed %s from %s (saved at %s)", policy.name, path, header.get("saved_at"))
    return header


__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "load_policy_state",
    "read_state",
    "save_policy_state",
    "write_state",
]
