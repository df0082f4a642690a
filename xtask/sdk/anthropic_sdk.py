"""The official Anthropic Python SDK against a running gateway, for one kind of backend.

Run by `cargo xtask clients anthropic-sdk-*` as `anthropic_sdk.py GATEWAY_URL MOCK_URL BACKEND`
(see harness.py), with the gateway in front of the mock upstream through an `anthropic` backend
(pass-through), an `openai` backend (converted to Chat Completions) or the in-process
`antigravity` backend. Prints one line per check and a closing `N passed, M failed` line; exits
non-zero on failure.
"""

import anthropic

from harness import (
    BACKEND, CHAT_STREAM_TEXT, CLIENT_KEY, GATEWAY, MOCK_SIGNATURE, MOCK_TEXT, STREAM_TEXT, TOOL_SAID,
    check, clear_upstream, expect_upstream, run, upstream_requests,
)

client = anthropic.Anthropic(base_url=GATEWAY, api_key=CLIENT_KEY, max_retries=0, timeout=30)
MODEL = "claude-sonnet-4-5"

UPSTREAM = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "antigravity": "v1internal:streamGenerateContent",
    "gemini": "/v1beta/models/",
}[BACKEND]
TEXT = {"anthropic": MOCK_TEXT, "openai": MOCK_TEXT, "antigravity": STREAM_TEXT, "gemini": MOCK_TEXT}[BACKEND]
STREAMED = {
    "anthropic": STREAM_TEXT, "openai": CHAT_STREAM_TEXT, "antigravity": STREAM_TEXT,
    "gemini": STREAM_TEXT,
}[BACKEND]

TOOLS = [{
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]

HELLO = [{"role": "user", "content": "hello"}]


def text_of(message):
    return "".join(block.text for block in message.content if block.type == "text")


@check()
def non_streaming():
    message = client.messages.create(model=MODEL, max_tokens=256, messages=HELLO)
    assert message.type == "message" and message.role == "assistant", message
    assert text_of(message) == TEXT, message
    assert message.stop_reason == "end_turn", message.stop_reason
    assert message.usage.output_tokens > 0, message.usage
    expect_upstream(UPSTREAM)


@check()
def streaming_text_and_final_message():
    with client.messages.stream(model=MODEL, max_tokens=256, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == STREAMED, repr(text)
    assert text_of(final) == text, final
    assert final.stop_reason == "end_turn", final.stop_reason
    assert final.usage.output_tokens > 0, final.usage
    expect_upstream(UPSTREAM)


@check()
def tool_use_over_two_turns():
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(model=MODEL, max_tokens=256, messages=messages, tools=TOOLS)
    assert first.stop_reason == "tool_use", first
    calls = [block for block in first.content if block.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather", first.content
    assert calls[0].input == {"city": "Paris"}, calls[0].input
    assert calls[0].id, calls[0]
    expect_upstream(UPSTREAM)
    clear_upstream()
    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": "12 degrees"}]},
    ]
    with client.messages.stream(model=MODEL, max_tokens=256, messages=messages, tools=TOOLS) as stream:
        second = stream.get_final_message()
    assert second.stop_reason == "end_turn", second
    # The mock's answer names what reached it: the plain result from an Anthropic client passed
    # through, Gemini's functionResponse object after a conversion, its fixed text otherwise.
    expected = {
        "anthropic": TOOL_SAID + "12 degrees",
        "gemini": TOOL_SAID + '{"output":"12 degrees"}',
    }.get(BACKEND, STREAMED)
    assert text_of(second) == expected, second
    [request] = expect_upstream(UPSTREAM)
    assert "12 degrees" in str(request["body"]), "the tool result did not reach the upstream"


@check("anthropic", "antigravity")
def thinking_with_signatures_over_two_turns():
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first = client.messages.create(model=MODEL, max_tokens=2048, thinking=thinking, messages=HELLO)
    blocks = [block.type for block in first.content]
    assert blocks[0] == "thinking" and "text" in blocks, blocks
    assert first.content[0].thinking, first.content[0]
    assert first.content[0].signature == MOCK_SIGNATURE, first.content[0]
    clear_upstream()
    messages = HELLO + [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": "and then?"},
    ]
    with client.messages.stream(model=MODEL, max_tokens=2048, thinking=thinking, messages=messages) as stream:
        second = stream.get_final_message()
    assert second.content[0].type == "thinking", second.content
    assert second.content[0].signature == MOCK_SIGNATURE, second.content[0]
    [request] = expect_upstream(UPSTREAM)
    assert MOCK_SIGNATURE in str(request["body"]), "the signed thinking did not go back upstream"


@check()
def count_tokens_grows_with_the_input():
    short = client.messages.count_tokens(model=MODEL, messages=HELLO)
    long = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hello " * 400}])
    assert short.input_tokens > 0, short
    assert long.input_tokens > short.input_tokens, (short, long)


def expect_error(error_type, status, **request):
    request.setdefault("model", MODEL)
    request.setdefault("max_tokens", 16)
    request.setdefault("messages", HELLO)
    try:
        request.pop("client", client).messages.create(**request)
    except error_type as error:
        assert error.status_code == status, error
        assert isinstance(error.body, dict) and error.body.get("type") == "error", error.body
        return error
    raise AssertionError(f"no {error_type.__name__} raised")


@check()
def unknown_model_is_not_found():
    error = expect_error(anthropic.NotFoundError, 404, model="no-such-model")
    assert error.body["error"]["type"] == "not_found_error", error.body


@check()
def wrong_key_is_an_authentication_error():
    wrong = anthropic.Anthropic(base_url=GATEWAY, api_key="wrong-key", max_retries=0, timeout=30)
    error = expect_error(anthropic.AuthenticationError, 401, client=wrong)
    assert error.body["error"]["type"] == "authentication_error", error.body
    assert upstream_requests() == [], "a refused request reached the upstream"


@check()
def malformed_request_is_a_bad_request():
    error = expect_error(anthropic.BadRequestError, 400, messages="not a list of messages")
    assert error.body["error"]["type"] == "invalid_request_error", error.body


@check()
def upstream_rate_limit_is_a_rate_limit_error():
    error = expect_error(anthropic.RateLimitError, 429, model="claude-mock-status-429")
    assert error.body["error"]["type"] == "rate_limit_error", error.body


@check()
def upstream_overload_is_an_overloaded_error():
    error = expect_error(anthropic.OverloadedError, 529, model="claude-mock-status-529")
    assert error.body["error"]["type"] == "overloaded_error", error.body


run()
