"""The API key: sent as a bearer header, never in logs, errors, reprs or descriptions."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from edgefmp.backends.remote import RemoteOptions
from edgefmp.errors import BackendError, BackendUnavailable
from edgefmp.results import VerifyRequest
from tests.helpers.fake_model_server import FakeModelServer
from tests.helpers.remote import gradient_image, make_remote

SECRET = "sk-test-Zq8SECRETvalue1234"
ENV = "EDGEFMP_TEST_REMOTE_KEY"


def _request() -> VerifyRequest:
    return VerifyRequest(gradient_image(), "ball", "red")


@pytest.mark.parametrize("protocol", ["openai", "kserve"])
def test_key_is_sent_but_never_leaks(
    protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV, SECRET)
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    answer = "yes" if protocol == "openai" else [{"name": "verdict", "datatype": "BOOL", "shape": [1], "data": [1]}]
    # The failing server echoes the key back, as a careless proxy might.
    with FakeModelServer(protocol, answer=answer, error_text=f"bad key {SECRET}") as server:
        backend = make_remote(server, "verify", api_key_env=ENV, retries=1)
        try:
            assert backend.infer(_request()).value is True  # type: ignore[attr-defined]
            server.mode = "http500"
            with pytest.raises(BackendError) as info:
                backend.infer(_request())
            texts = [
                str(info.value),
                repr(info.value),
                repr(backend),
                repr(backend.options),
                str(backend.describe()),
            ]
        finally:
            backend.close()
        hits = server.wait_for_hits(3)
    assert hits[0].headers["authorization"] == f"Bearer {SECRET}"
    assert "[redacted]" in str(info.value)
    for text in [*texts, caplog.text]:
        assert SECRET not in text
    assert ENV in str(backend.describe())  # the variable's name is fine to show


def test_missing_key_is_unavailable_without_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with FakeModelServer("openai") as server:
        backend = make_remote(server, "verify", api_key_env=ENV)
        try:
            with pytest.raises(BackendUnavailable, match=f"environment variable {ENV} .* is not set"):
                backend.infer(_request())
        finally:
            backend.close()
        assert server.hits == []


def test_rotated_key_is_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeModelServer("openai") as server:
        backend = make_remote(server, "verify", api_key_env=ENV)
        try:
            for key in ("sk-first-aaaa", "sk-second-bbbb"):
                monkeypatch.setenv(ENV, key)
                backend.infer(_request())
        finally:
            backend.close()
        assert [h.headers["authorization"] for h in server.wait_for_hits(2)] == [
            "Bearer sk-first-aaaa",
            "Bearer sk-second-bbbb",
        ]


def test_a_pasted_key_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as info:
        RemoteOptions(url="http://127.0.0.1:1/v1", api_key_env=SECRET)
    assert "NAME of an environment variable" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"url": "127.0.0.1:8000"}, "http:// or https://"),
        ({"url": "http://x", "retries": 99}, "retries"),
        ({"url": "http://x", "jpeg_quality": 0}, "jpeg_quality"),
        ({"url": "http://x", "protocol": "grpc"}, "protocol"),
        ({"url": "http://x", "timeot_s": 1}, "timeot_s"),
    ],
)
def test_options_are_validated(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        RemoteOptions.model_validate(options)
