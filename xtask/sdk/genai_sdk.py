"""The official google-genai Python SDK against a running gateway, for one kind of backend.

Run by `cargo xtask clients genai-sdk-*` as `genai_sdk.py GATEWAY_URL MOCK_URL BACKEND` (see
harness.py), with the gateway in front of the mock upstream through the in-process
`antigravity` backend, a `gemini` backend (pass-through) or an `openai` backend (converted to
Chat Completions). Prints one line per check and a closing `N passed, M failed` line; exits
non-zero on failure.
"""

import json

from google import genai
from google.genai import errors, types

from harness import (
    BACKEND, CHAT_STREAM_TEXT, CLIENT_KEY, GATEWAY, MOCK_TEXT, STREAM_TEXT, TOOL_SAID,
    check, clear_upstream, expect_upstream, run, upstream_requests,
)


def make_client(key):
    options = types.HttpOptions(
        base_url=GATEWAY, api_version="v1beta", timeout=30_000,
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=key, http_options=options)


client = make_client(CLIENT_KEY)
MODEL = "gemini-2.5-flash"

UPSTREAM = {
    "antigravity": "v1internal:streamGenerateContent",
    "geminicli": "v1internal:streamGenerateContent",
    "gemini": "/v1beta/models/",
    "openai": "/v1/chat/completions",
}[BACKEND]
TEXT = {"antigravity": STREAM_TEXT, "geminicli": STREAM_TEXT, "gemini": MOCK_TEXT, "openai": MOCK_TEXT}[BACKEND]
STREAMED = {
    "antigravity": STREAM_TEXT, "geminicli": STREAM_TEXT, "gemini": STREAM_TEXT, "openai": CHAT_STREAM_TEXT,
}[BACKEND]

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather for a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
NO_AUTOMATIC = types.AutomaticFunctionCallingConfig(disable=True)


@check()
def generate():
    response = client.models.generate_content(model=MODEL, contents="hello")
    assert response.text == TEXT, response
    assert response.candidates[0].finish_reason == types.FinishReason.STOP, response.candidates[0]
    assert response.usage_metadata.prompt_token_count > 0, response.usage_metadata
    expect_upstream(UPSTREAM)


@check()
def stream():
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hello"))
    text = "".join(chunk.text or "" for chunk in chunks)
    assert text == STREAMED, repr(text)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP, chunks[-1]
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.total_token_count > 0, chunks[-1]
    expect_upstream(UPSTREAM)


@check()
def function_calling_over_two_turns():
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AUTOMATIC,
    )
    contents = [types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")])]
    first = client.models.generate_content(model=MODEL, contents=contents, config=config)
    calls = first.function_calls or []
    assert len(calls) == 1 and calls[0].name == "get_weather", first
    assert calls[0].args == {"city": "Paris"}, calls[0].args
    expect_upstream(UPSTREAM)
    clear_upstream()
    contents += [
        first.candidates[0].content,
        types.Content(role="user", parts=[
            types.Part.from_function_response(name="get_weather", response={"temp_c": 12}),
        ]),
    ]
    second = client.models.generate_content(model=MODEL, contents=contents, config=config)
    assert not second.function_calls, second
    expected = TOOL_SAID + '{"temp_c":12}' if BACKEND == "gemini" else TEXT
    assert second.text == expected, second.text
    [request] = expect_upstream(UPSTREAM)
    assert "temp_c" in json.dumps(request["body"]), "the function response did not reach the upstream"


@check()
def count_tokens_grows_with_the_input():
    short = client.models.count_tokens(model=MODEL, contents="hello")
    long = client.models.count_tokens(model=MODEL, contents="hello " * 400)
    assert short.total_tokens > 0, short
    assert long.total_tokens > short.total_tokens, (short, long)


@check()
def models_list():
    models = list(client.models.list())
    names = [model.name for model in models]
    assert names, "no models"
    assert all(name.startswith("models/") for name in names), names
    # What the upstream lists passes through, in Gemini's form: the mock Antigravity lists
    # gemini-3-pro-high, the mock chat upstream mock-model, the mock Gemini API gemini-2.5-flash.
    listed = {"models/gemini-3-pro-high", "models/mock-model", "models/gemini-2.5-flash"}
    assert listed & set(names), names


def expect_client_error(code, **request):
    request.setdefault("model", MODEL)
    request.setdefault("contents", "hello")
    try:
        request.pop("client", client).models.generate_content(**request)
    except errors.ClientError as error:
        assert error.code == code, error
        assert error.message, error
        return error
    raise AssertionError(f"no ClientError {code} raised")


@check()
def unknown_model_is_not_found():
    error = expect_client_error(404, model="no-such-model")
    assert error.status == "NOT_FOUND", error.status


@check()
def wrong_key_is_unauthenticated():
    wrong = make_client("wrong-key")  # held: a collected client closes its connection pool
    expect_client_error(401, client=wrong)
    assert upstream_requests() == [], "a refused request reached the upstream"


@check()
def malformed_request_is_invalid_argument():
    broken = types.GenerateContentConfig(http_options=types.HttpOptions(extra_body={"contents": 42}))
    error = expect_client_error(400, config=broken)
    assert error.status == "INVALID_ARGUMENT", error.status


@check()
def upstream_quota_is_resource_exhausted():
    error = expect_client_error(429, model="gemini-mock-status-429")
    assert error.status == "RESOURCE_EXHAUSTED", error.status


run()
