"""`edgefmp serve` as a user runs it: a child process on 127.0.0.1, the token from an
environment variable (never printed), clear errors for a bad catalog or an unset variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from edgefmp.backends.catalog import default_catalog_path
from edgefmp.serve.process import ServeProcess

KEY = "cli-serve-secret-41b7"


def test_serve_binds_loopback_and_requires_the_token_from_env() -> None:
    with ServeProcess(
        default_catalog_path(),
        "--token-env",
        "EDGEFMP_TEST_SERVE_TOKEN",
        "--max-request-mb",
        "0.5",
        env={"EDGEFMP_TEST_SERVE_TOKEN": KEY},
    ) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.url, timeout=20) as http:
            assert http.get("/v2/health/ready").json() == {"ready": True}
            assert http.get("/v1/models").status_code == 401
            models = http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
            assert {m["id"] for m in models["data"]} == {"shapes-cv", "edgefmp"}
            assert (
                http.post(
                    "/v2/models/edgefmp/infer", content=b"x" * 600_000, headers={"Authorization": f"Bearer {KEY}"}
                ).status_code
                == 413
            )
        output = server.output()
    assert KEY not in output


def test_serve_explains_an_unset_token_variable_and_a_bad_catalog(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "edgefmp.cli", "serve"]
    done = subprocess.run(
        [*run, str(default_catalog_path()), "--token-env", "EDGEFMP_TEST_UNSET_VAR", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "EDGEFMP_TEST_UNSET_VAR" in " ".join(done.stderr.split())
    missing = tmp_path / "nowhere.yaml"
    done = subprocess.run([*run, str(missing), "--port", "0"], capture_output=True, text=True, timeout=60)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "nowhere.yaml does not exist" in said
    assert "--catalog" not in said and "first argument" in said  # serve takes the catalog positionally
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nfunctions:\n  detect:\n    - {name: a, kind: onx}\n")
    done = subprocess.run([*run, str(bad), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "functions.detect[0].kind" in " ".join(done.stderr.split())


def test_importing_edgefmp_and_its_cli_does_not_import_fastapi_or_uvicorn() -> None:
    code = (
        "import sys, edgefmp, edgefmp.cli, edgefmp.serve, edgefmp.serve.commands, edgefmp.netem; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
