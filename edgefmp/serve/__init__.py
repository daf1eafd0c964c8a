"""`edgefmp serve`: the remote tier over HTTP (KServe v2 REST and OpenAI-compatible chat).

A catalog's backends are served by name, so an edge device's RemoteBackend can call this
server exactly as it calls vLLM (OpenAI API) or Triton (KServe v2). FastAPI and uvicorn are
imported only by the modules that need them (app, kserve, openai_api, middleware, runner), so
`import edgefmp` and `edgefmp --help` work without the `serve` extra. Build an app with
`edgefmp.serve.app.create_app(catalog, settings)`; docs/DEPLOY.md shows deployments.
"""

from __future__ import annotations

from edgefmp.serve.errors import RequestRejected
from edgefmp.serve.settings import ServeSettings

__all__ = ["RequestRejected", "ServeSettings"]
