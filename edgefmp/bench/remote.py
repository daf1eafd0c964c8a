"""The remote tier of a bench: the catalog's largest models served by `edgefmp serve` on
loopback, and the catalog the workers use, whose last backend of every function calls it.

A catalog lists its backends cheapest first, and the last one is the model a deployment runs
on a server. The bench starts one `edgefmp serve` child for the sweep (serving the catalog with
the same thread pinning as the workers), and rewrites each function's last entry into a
`kind: remote` KServe client of that server (`<name>-remote`, JPEG uploads). Every call to it
then pays what a remote call pays on this machine: encoding, HTTP, the server's queue and
compute, decoding, and its real byte counts; the router sees it as `location: remote`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgefmp.backends.catalog import BackendSpec, CatalogSpec, load_catalog
from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)

SERVED_MODEL = "edgefmp"  # `edgefmp serve`'s name for "each function's most capable backend"
REMOTE_OPTIONS: dict[str, Any] = {
    "protocol": "kserve",
    "kserve_image": "jpeg",
    "jpeg_quality": 90,
    "max_side": None,
    "timeout_s": 30.0,
    "retries": 1,
    "failure_threshold": 20,
    "cooldown_s": 5.0,
}


def with_remote_largest(spec: CatalogSpec, url: str) -> CatalogSpec:
    """A copy of `spec` whose last backend of every function is a remote client of `url`.

    The client keeps the served model's `cost:` (its parameters, and its on-device latency,
    which `profile_remote` replaces by what a call through the server measures) and its
    `accuracy:` (the same model answers)."""
    out = spec.model_copy(deep=True)
    for fn, backends in out.functions.items():
        last = backends[-1]
        if last.kind == "remote":
            continue
        backends[-1] = BackendSpec(
            name=f"{last.name}-remote",
            kind="remote",
            function=fn,
            model=SERVED_MODEL,
            location="remote",
            cost=last.cost.model_copy(),
            accuracy=last.accuracy,
            options={**REMOTE_OPTIONS, "url": url},
            base_dir=last.base_dir,
        )
    return out


def profile_remote(spec: CatalogSpec, meter: str = "auto", runs: int = 12, warmup: int = 3) -> dict[str, Any]:
    """`edgefmp profile` of the remote backends of `spec` (once the server runs), in the
    profile format, for `apply_profile`.

    The device's profile measures the served model on the device; what a call to it costs is
    that plus encoding, the link and the server's queue, which over a WAN is 30-100 times
    more. Starting the router from the on-device figure would make its first remote calls look
    cheap, and a budget's price would then lurch when the truth arrived.
    """
    from dataclasses import asdict

    from edgefmp.bench.profile import PROFILE_FORMAT, PROFILE_VERSION, profile_backend, sample_requests
    from edgefmp.cost.meters import select_meter

    requests = sample_requests()
    energy = select_meter(meter)
    rows = []
    for fn, backends in spec.functions.items():
        for b in backends:
            if b.kind == "remote" and requests.get(fn):
                row = profile_backend(b, requests[fn], energy, runs=runs, warmup=warmup, batches=False)
                if row.error is not None:
                    log.warning("profiling the remote %s/%s failed (%s); it keeps its prior", fn, b.name, row.error)
                rows.append(asdict(row))
    return {"format": PROFILE_FORMAT, "version": PROFILE_VERSION, "backends": rows}


def pin_onnx_threads(spec: CatalogSpec, threads: int | None) -> None:
    """In place: every ONNX backend of `spec` runs `threads` intra- and inter-op threads (None:
    leave them), so the workers and the server measure their models alike."""
    if threads is None:
        return
    for backends in spec.functions.values():
        for b in backends:
            if b.kind == "onnx":
                b.options["intra_op_threads"] = threads
                b.options["inter_op_threads"] = threads


def pinned_copy(catalog: str | Path, threads: int | None, folder: Path) -> Path:
    """The catalog written into `folder` with every ONNX backend pinned to `threads` threads
    (what the server runs, so its models are measured like the workers')."""
    from edgefmp.bench.prior import catalog_yaml

    spec = load_catalog(catalog)
    pin_onnx_threads(spec, threads)
    path = folder / "served-catalog.yaml"
    path.write_text(catalog_yaml(spec, folder), encoding="utf-8")
    return path


@contextmanager
def serve_largest(catalog: str, threads: int | None, link: str = "") -> Iterator[str]:
    """Run `edgefmp serve` on loopback for the sweep; yields the URL the workers call.

    `link` (a NetConditions spec, e.g. "rtt=40ms,bw=20mbit") puts the shaping proxy between
    the workers and the server, so remote calls pay a real uplink's round trips and transfer
    time rather than loopback's; "" calls the server directly."""
    from edgefmp.netem import NetConditions, ShapingProxy

    conditions = NetConditions.parse(link)  # checked before anything starts
    try:
        from edgefmp.serve.process import ServeProcess
    except ImportError as exc:  # pragma: no cover - the serve package ships with edgefmp
        raise ConfigError(f"the remote tier needs edgefmp.serve: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="edgefmp-bench-serve-") as tmp:
        served = pinned_copy(catalog, threads, Path(tmp))
        with ServeProcess(served, "--log-level", "error") as server:
            log.info("remote tier: edgefmp serve %s at %s", catalog, server.url)
            if not link.strip():
                yield server.url
                return
            with ShapingProxy(server.url, conditions) as proxy:
                log.info("remote tier behind a shaped link (%s) at %s", link, proxy.url_for(server.url))
                yield proxy.url_for(server.url)


__all__ = [
    "REMOTE_OPTIONS",
    "SERVED_MODEL",
    "pin_onnx_threads",
    "pinned_copy",
    "profile_remote",
    "serve_largest",
    "with_remote_largest",
]
