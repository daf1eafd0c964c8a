"""`edgefmp serve CATALOG`: the catalog's backends as a remote tier over HTTP.

FastAPI and uvicorn are imported when the command runs, not when the CLI starts, so the rest
of the CLI works without the `serve` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgefmp.serve.settings import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MODEL


def register(app: typer.Typer) -> None:
    """Add the `serve` command to the edgefmp CLI."""

    @app.command()
    def serve(
        catalog: Annotated[Path, typer.Argument(help="catalog YAML whose backends to serve")],
        host: Annotated[
            str, typer.Option(help="address to listen on; 0.0.0.0 exposes the server to the network")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="port (0 = any free port, printed at start)")] = 8000,
        token_env: Annotated[
            str | None, typer.Option(help="NAME of an environment variable holding the bearer token clients must send")
        ] = None,
        max_request_mb: Annotated[
            float, typer.Option(min=0.001, help="refuse request bodies larger than this (413)")
        ] = DEFAULT_MAX_REQUEST_BYTES / 2**20,
        default_model: Annotated[
            str, typer.Option(help="model name that routes each function to the catalog's most capable backend")
        ] = DEFAULT_MODEL,
        log_level: Annotated[
            str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug")
        ] = "warning",
    ) -> None:
        """Serve a catalog's backends: KServe v2 REST, OpenAI-compatible chat, Prometheus /metrics."""
        from edgefmp.backends.catalog import Catalog, load_catalog
        from edgefmp.cli import console, out, user_errors
        from edgefmp.serve.settings import ServeSettings

        with user_errors():
            try:
                from edgefmp.serve.app import create_app
                from edgefmp.serve.runner import bind, run
            except ModuleNotFoundError as exc:
                from edgefmp.errors import ConfigError

                raise ConfigError(
                    f"edgefmp serve needs {exc.name}; install the extra: pip install 'edgefmp[serve]'"
                ) from exc
            settings = ServeSettings(
                host=host,
                port=port,
                token=ServeSettings.token_from_env(token_env),
                max_request_bytes=int(max_request_mb * 2**20),
                default_model=default_model,
            )
            if not catalog.is_file():
                from edgefmp.errors import ConfigError

                what = "is a folder, not a file" if catalog.is_dir() else "does not exist"
                raise ConfigError(
                    f"catalog {catalog} {what}; give the catalog YAML as the first argument, "
                    "e.g. edgefmp serve models/catalog.yaml"
                )
            spec = load_catalog(catalog)
            with Catalog.open(spec) as opened:
                app_ = create_app(opened, settings)
                sock = bind(settings.host, settings.port)
                bound = sock.getsockname()[1]
                if not settings.loopback and settings.token is None:
                    console.print(
                        f"[yellow]warning:[/] listening on {host} without a token: anyone who can reach this "
                        "machine can use its models; pass --token-env"
                    )
                elif not settings.loopback:
                    console.print(
                        f"[yellow]note:[/] serving plain HTTP on {host}: the bearer token and the images cross "
                        "the network unencrypted; put a TLS-terminating reverse proxy in front (docs/DEPLOY.md)"
                    )
                names = ", ".join(app_.state.models.names())
                out.print(f"edgefmp serve: listening on http://{host}:{bound} (models: {names})", highlight=False)
                try:
                    run(app_, sock, log_level=log_level)
                finally:
                    sock.close()
