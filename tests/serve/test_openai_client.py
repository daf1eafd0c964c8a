"""The official `openai` client against `edgefmp serve`: chat completions with image data
URLs (vqa, verify), text-only llm, model listing, and errors as the client's exception types."""

from __future__ import annotations

import math

import pytest

from tests.serve.conftest import TOKEN, Served, data_url, red_circle

openai = pytest.importorskip("openai")


@pytest.fixture
def client(served: Served) -> openai.OpenAI:
    c = openai.OpenAI(base_url=f"{served.url}/v1", api_key=TOKEN, max_retries=0, timeout=20)
    yield c
    c.close()


def _ask(text: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": data_url(red_circle())}},
            ],
        }
    ]


def test_vqa_with_an_image_data_url(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="shapes-cv", messages=_ask("What color is the shape?"))
    assert reply.choices[0].message.content == "red"
    assert reply.model == "shapes-cv" and reply.object == "chat.completion"


@pytest.mark.parametrize(
    ("prompt", "extra", "expected"),
    [
        ("Is the circle red? Answer yes or no.", None, "yes"),  # RemoteBackend's verify prompt
        ("Is the circle blue? Answer yes or no.", None, "no"),
        ("Does it look right?", {"edgefmp": {"function": "verify", "subject": "circle", "property": "red"}}, "yes"),
    ],
)
def test_verify_from_the_prompt_or_explicit_fields(
    client: openai.OpenAI, prompt: str, extra: dict | None, expected: str
) -> None:
    reply = client.chat.completions.create(model="edgefmp", messages=_ask(prompt), extra_body=extra)
    assert reply.choices[0].message.content == expected
    assert reply.system_fingerprint == "edgefmp-verify-shapes-cv"


def test_llm_text_only_with_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="edgefmp", messages=[{"role": "user", "content": "say hi"}], logprobs=True
    )
    choice = reply.choices[0]
    assert choice.message.content == "echo: say hi"
    assert choice.logprobs is not None
    assert math.isclose(math.exp(choice.logprobs.content[0].logprob), 0.5, rel_tol=1e-6)


def test_models_list_has_every_backend_and_the_default(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"shapes-cv", "echo-llm", "edgefmp"}


def test_errors_arrive_as_the_clients_exception_types(served: Served, client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError, match="unknown model 'nope'"):
        client.chat.completions.create(model="nope", messages=_ask("What color is it?"))
    with pytest.raises(openai.BadRequestError, match="only data URLs"):
        client.chat.completions.create(
            model="shapes-cv",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What color?"},
                        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data"}},
                    ],
                }
            ],
        )
    with pytest.raises(openai.BadRequestError, match="stream=true is not supported"):
        client.chat.completions.create(model="shapes-cv", messages=_ask("What color?"), stream=True)
    with pytest.raises(openai.BadRequestError, match="does not serve 'llm'"):
        client.chat.completions.create(model="shapes-cv", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError, match="could not answer"):
        client.chat.completions.create(
            model="shapes-cv",
            messages=_ask("x"),
            extra_body={"edgefmp": {"function": "verify", "subject": "circle", "property": "fast"}},
        )
