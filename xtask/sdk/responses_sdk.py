"""The official OpenAI Python SDK's Responses API against a running gateway, for one backend.

Run by `cargo xtask clients responses-sdk-*` as `responses_sdk.py GATEWAY_URL MOCK_URL BACKEND`
(see harness.py), with the gateway in front of the mock upstream through an `openai` backend
with `native_responses = true` (`native`: pass-through), an `openai` backend serving Chat
Completions only (`openai`: converted), an `anthropic` or a `gemini` backend (converted) or the
in-process `antigravity` backend. Prints one line
per check and a closing `N passed, M failed` line; exits non-zero on failure.
"""

import json

import openai

from harness import (
    BACKEND, CHAT_STREAM_TEXT, CLIENT_KEY, GATEWAY, MOCK_TEXT, STREAM_TEXT, TOOL_SAID,
    check, clear_upstream, expect_upstream, run, upstream_requests,
)

client = openai.OpenAI(base_url=f"{GATEWAY}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
# Claude through Antigravity: the mock answers its thinking requests with signed thoughts.
MODEL = "claude-sonnet-4-5" if BACKEND == "antigravity" else "gpt-5"
FAILING_MODEL = "claude-mock-status-429" if BACKEND == "antigravity" else "gpt-mock-status-429"

UPSTREAM = {
    "native": "/v1/responses",
    "openai": "/v1/chat/completions",
    "antigravity": "v1internal:streamGenerateContent",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/",
}[BACKEND]
TEXT = {
    "native": MOCK_TEXT, "openai": MOCK_TEXT, "antigravity": STREAM_TEXT,
    "anthropic": MOCK_TEXT, "gemini": MOCK_TEXT,
}[BACKEND]
STREAMED = {
    "native": STREAM_TEXT, "openai": CHAT_STREAM_TEXT, "antigravity": STREAM_TEXT,
    "anthropic": STREAM_TEXT, "gemini": STREAM_TEXT,
}[BACKEND]

TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]


@check()
def create():
    response = client.responses.create(model=MODEL, input="hello")
    assert response.object == "response" and response.status == "completed", response
    assert response.output_text == TEXT, response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0, response.usage
    expect_upstream(UPSTREAM)


@check()
def stream_events_in_order_and_final_response():
    events = []
    with client.responses.stream(model=MODEL, input="hello") as stream:
        for event in stream:
            events.append(event)
        final = stream.get_final_response()
    types = [event.type for event in events]
    assert types[0] == "response.created", types
    assert types[-1] == "response.completed", types
    numbers = [event.sequence_number for event in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    for opened, closed in [("response.output_item.added", "response.output_item.done"),
                           ("response.content_part.added", "response.content_part.done")]:
        assert opened in types and types.index(opened) < types.index(closed), types
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == STREAMED, repr(deltas)
    assert final.output_text == deltas, final.output_text
    assert final.status == "completed", final.status
    expect_upstream(UPSTREAM)


@check()
def function_tools_over_two_turns():
    items = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.responses.create(model=MODEL, input=items, tools=TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", first.output
    assert json.loads(calls[0].arguments) == {"city": "Paris"}, calls[0].arguments
    assert calls[0].call_id, calls[0]
    expect_upstream(UPSTREAM)
    clear_upstream()
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "12 degrees"})
    second = client.responses.create(model=MODEL, input=items, tools=TOOLS)
    assert not [item for item in second.output if item.type == "function_call"], second.output
    # The mock's answer names what reached it: the plain output for Responses and Anthropic
    # upstreams, Gemini's functionResponse object after a conversion, its fixed text otherwise.
    expected = {
        "native": TOOL_SAID + "12 degrees",
        "anthropic": TOOL_SAID + "12 degrees",
        "gemini": TOOL_SAID + '{"output":"12 degrees"}',
    }.get(BACKEND, TEXT)
    assert second.output_text == expected, second.output_text
    [request] = expect_upstream(UPSTREAM)
    assert "12 degrees" in json.dumps(request["body"]), "the function output did not reach the upstream"


@check("native", "antigravity")
def reasoning_summary():
    response = client.responses.create(
        model=MODEL, input="think first", reasoning={"effort": "low", "summary": "auto"},
    )
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert reasoning, response.output
    summary = " ".join(part.text for part in reasoning[0].summary)
    assert summary.strip(), reasoning[0]
    assert response.output_text, response.output


@check()
def previous_response_id_carries_the_conversation():
    first = client.responses.create(model=MODEL, input="My name is Ada.", store=True)
    clear_upstream()
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    assert second.status == "completed" and second.output_text, second
    [request] = expect_upstream(UPSTREAM)
    body = json.dumps(request["body"], ensure_ascii=False)
    passed_on = request["body"].get("previous_response_id") == first.id
    assert passed_on or "My name is Ada." in body, f"the first turn is not in the upstream request: {body[:500]}"


def expect_error(error_type, status, **request):
    request.setdefault("model", MODEL)
    request.setdefault("input", "hello")
    try:
        request.pop("client", client).responses.create(**request)
    except error_type as error:
        assert error.status_code == status, error
        assert isinstance(error.body, dict) and error.body.get("message"), error.body
        return error
    raise AssertionError(f"no {error_type.__name__} raised")


@check()
def unknown_model_is_not_found():
    expect_error(openai.NotFoundError, 404, model="no-such-model")


@check()
def wrong_key_is_an_authentication_error():
    wrong = openai.OpenAI(base_url=f"{GATEWAY}/v1", api_key="wrong-key", max_retries=0, timeout=30)
    expect_error(openai.AuthenticationError, 401, client=wrong)
    assert upstream_requests() == [], "a refused request reached the upstream"


@check()
def malformed_request_is_a_bad_request():
    expect_error(openai.BadRequestError, 400, input=42)


@check()
def upstream_rate_limit_is_a_rate_limit_error():
    expect_error(openai.RateLimitError, 429, model=FAILING_MODEL)


run()
