"""What a paid remote call costs: `options.price` per call and per 1000 tokens of the answer's
`usage`, carried on the result (and on the error of a billed call that could not be read) as
`money`, in US dollars, for the call's Cost."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from edgefmp.backends.remote import RemoteAnswerError
from edgefmp.backends.remote_http import RemoteHTTPError
from edgefmp.errors import ConfigError
from edgefmp.results import VerifyRequest
from tests.helpers.fake_model_server import FakeModelServer
from tests.helpers.remote import gradient_image, make_remote

PRICE = {"per_call": 0.001, "per_1k_input_tokens": 0.5, "per_1k_output_tokens": 2.0}
# the fake server reports usage {prompt_tokens: 10, completion_tokens: 1}
BILL = 0.001 + 10 / 1000 * 0.5 + 1 / 1000 * 2.0


def _request() -> VerifyRequest:
    return VerifyRequest(gradient_image(), "ball", "red")


def _money(carrier: Any) -> float:
    return float(carrier.money)


def test_openai_calls_are_priced_from_their_usage() -> None:
    with FakeModelServer("openai", answer="yes") as server:
        backend = make_remote(server, "verify", price=PRICE)
        try:
            results = [backend.infer(_request()) for _ in range(2)]
        finally:
            backend.close()
    assert [_money(r) for r in results] == [pytest.approx(BILL)] * 2


def test_an_answer_that_cannot_be_read_was_billed_all_the_same() -> None:
    with FakeModelServer("openai", answer="purple") as server:
        backend = make_remote(server, "verify", price=PRICE)
        try:
            with pytest.raises(RemoteAnswerError) as info:
                backend.infer(_request())
        finally:
            backend.close()
    assert _money(info.value) == pytest.approx(BILL)


def test_failed_calls_and_unpriced_backends_cost_nothing() -> None:
    with FakeModelServer("openai", answer="yes", mode="http500") as server:
        backend = make_remote(server, "verify", price=PRICE)
        try:
            with pytest.raises(RemoteHTTPError) as info:
                backend.infer(_request())
        finally:
            backend.close()
        server.mode = "ok"
        free = make_remote(server, "verify")
        try:
            assert _money(free.infer(_request())) == 0.0
        finally:
            free.close()
    assert _money(info.value) == 0.0


def test_kserve_is_priced_per_call_and_refuses_token_prices() -> None:
    verdict = [{"name": "verdict", "datatype": "BOOL", "shape": [1], "data": [True]}]
    with FakeModelServer("kserve", answer=verdict) as server:
        backend = make_remote(server, "verify", price={"per_call": 0.002})
        try:
            assert _money(backend.infer(_request())) == pytest.approx(0.002)
        finally:
            backend.close()
        with pytest.raises(ConfigError, match="per_1k_.*needs protocol: openai"):
            make_remote(server, "verify", price=PRICE)


def test_an_answer_without_usage_is_priced_per_call_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    reply = {"choices": [{"message": {"role": "assistant", "content": "yes"}}]}
    with FakeModelServer("openai", answer=reply) as server:
        backend = make_remote(server, "verify", price=PRICE)
        try:
            results = [backend.infer(_request()) for _ in range(3)]
        finally:
            backend.close()
    assert [_money(r) for r in results] == [pytest.approx(0.001)] * 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "usage" in warnings[0] and "'big-remote'" in warnings[0]


@pytest.mark.parametrize("price", [{"per_call": -1}, {"per_token": 1.0}])
def test_prices_are_validated(price: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="price"):
        make_remote("http://127.0.0.1:1/v1", "verify", price=price)


def test_the_calls_cost_carries_the_money() -> None:
    from edgefmp.backends.catalog import Catalog
    from edgefmp.frame import Frame
    from edgefmp.policies import create
    from edgefmp.program import compile_program
    from edgefmp.runtime.executor import Executor

    program = compile_program('def execute_command(image):\n    return image.verify_property("ball", "red")\n')
    with FakeModelServer("openai", answer="yes") as server:
        backend = make_remote(server, "verify", price=PRICE)
        with Catalog.from_backends({"verify": [backend]}) as catalog:
            trace = Executor(program, catalog, create("static:-1")).run_frame(Frame("f0", 0.0, gradient_image()))
    (call,) = trace.calls
    assert call.backend == "big-remote" and call.cost is not None
    assert call.cost.money == pytest.approx(BILL)
