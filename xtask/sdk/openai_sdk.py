"""The official OpenAI Python SDK against a running gateway.

Run by `cargo xtask test` with the gateway in front of the mock upstream: an OpenAI-compatible
backend for `gpt-*` models and the in-process Antigravity backend for `gemini-*` models.
Prints one line per check and a closing `N passed, M failed` line; exits non-zero on failure.
"""

import json
import sys
import traceback
import urllib.request

import openai
import prometheus_client.openmetrics.parser
import prometheus_client.parser

BASE_URL = sys.argv[1]
client = openai.OpenAI(base_url=BASE_URL, api_key="sdk-test-key", max_retries=0, timeout=30)

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]

checks = []


def check(function):
    checks.append(function)
    return function


def ask(model, stream=False, **extra):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], stream=stream, **extra
    )


@check
def non_streaming_openai_backend():
    answer = ask("gpt-4o")
    assert answer.choices[0].message.content == "Hello from the mock 世界", answer
    assert answer.choices[0].finish_reason == "stop"


@check
def streaming_openai_backend():
    text, finishes = "", []
    for chunk in ask("gpt-4o", stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert text.startswith("tok1 世界🌏 "), text
    assert finishes == ["stop"], finishes


@check
def non_streaming_in_process_antigravity():
    answer = ask("gemini-3-pro")
    assert answer.model == "gemini-3-pro", answer.model
    assert answer.choices[0].message.content.startswith("tok0 世界🌏 "), answer
    assert answer.usage.completion_tokens == 7, answer.usage


@check
def streaming_in_process_antigravity_with_usage():
    chunks = list(ask("gemini-3-pro", stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("tok0 世界🌏 "), text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 14, chunks[-1]


def two_turn_tool_call(model, stream):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        calls = {}
        for chunk in client.chat.completions.create(model=model, messages=messages, tools=TOOLS, stream=True):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                    slot["id"] = call.id or slot["id"]
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
        tool_calls = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(calls.items())
        ]
        assistant = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    else:
        first = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
        assert first.choices[0].finish_reason == "tool_calls", first
        assistant = first.choices[0].message.model_dump(exclude_none=True)
        tool_calls = assistant["tool_calls"]
    assert tool_calls[0]["function"]["name"] == "get_weather", tool_calls
    assert json.loads(tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}
    messages += [assistant, {"role": "tool", "tool_call_id": tool_calls[0]["id"], "content": "{\"temp_c\": 12}"}]
    second = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop", second
    assert second.choices[0].message.content, second


@check
def tool_calls_over_two_turns_openai_backend():
    two_turn_tool_call("gpt-4o", stream=False)


@check
def streamed_tool_calls_over_two_turns_in_process_antigravity():
    two_turn_tool_call("gemini-3-pro", stream=True)


@check
def tool_calls_over_two_turns_in_process_antigravity():
    two_turn_tool_call("gemini-3-pro", stream=False)


@check
def unknown_model_is_a_typed_not_found_error():
    try:
        ask("no-such-model")
    except openai.NotFoundError as error:
        assert error.status_code == 404
        assert error.code == "model_not_found", error.body
        return
    raise AssertionError("no error raised")


@check
def an_upstream_rejection_is_a_typed_error():
    try:
        ask("gpt-4o", extra_headers={"x-mock-status": "400"})
    except openai.BadRequestError as error:
        assert error.status_code == 400
        assert "mock error 400" in str(error), error
        return
    raise AssertionError("no error raised")


@check
def a_stream_cut_after_content_raises_instead_of_finishing():
    text, finishes = "", []
    try:
        stream = ask("gpt-4o", stream=True, extra_headers={"x-mock-chunks": "8", "x-mock-drop-after": "4"})
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
    except openai.APIError:
        assert text, "content arrived before the cut"
        assert finishes == [], f"a cut stream must never finish normally: {finishes}"
        return
    raise AssertionError(f"the cut stream ended normally: {text!r} {finishes}")


@check
def a_first_hop_failing_before_content_is_invisible():
    text, finishes, models = "", [], set()
    for chunk in ask("gpt-failover", stream=True):
        models.add(chunk.model)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert text.startswith("tok1 世界🌏 "), text
    assert finishes == ["stop"], finishes
    assert models == {"gpt-4o"}, models



@check
def a_stream_cut_after_content_is_continued_on_the_next_hop():
    # The first hop cuts its stream halfway; the gateway continues the answer on the next one.
    text, finishes, ids = "", [], set()
    for chunk in ask("gpt-rescue", stream=True, extra_headers={"x-mock-chunks": "8"}):
        ids.add(chunk.id)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    expected = "".join(f"tok{i} 世界🌏 " for i in range(1, 8))
    assert text == expected, f"the text whole and once: {text!r}"
    assert finishes == ["stop"], finishes
    assert len(ids) == 1, f"one response: {ids}"


def metrics(accept=None, method="GET"):
    root = BASE_URL[: -len("/v1")] if BASE_URL.endswith("/v1") else BASE_URL
    request = urllib.request.Request(root + "/metrics", method=method)
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("content-type", ""), response.read().decode()


@check
def metrics_parse_with_the_prometheus_text_parser():
    content_type, text = metrics()
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    families = {f.name: f for f in prometheus_client.parser.text_string_to_metric_families(text)}
    assert families["gateway_requests"].type == "counter", families["gateway_requests"]
    assert any(s.name == "gateway_requests_total" for s in families["gateway_requests"].samples)
    untyped = [name for name, f in families.items() if f.type in ("unknown", "untyped")]
    assert not untyped, f"families without a type: {untyped}"
    # Prometheus asks for OpenMetrics first, and gets it.
    content_type, text = metrics("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert content_type.startswith("application/openmetrics-text"), content_type
    names = {f.name for f in prometheus_client.openmetrics.parser.text_string_to_metric_families(text)}
    assert "gateway_requests" in names, names
    content_type, body = metrics(method="HEAD")
    assert content_type.startswith("text/plain") and body == "", (content_type, body)


passed = failed = 0
for function in checks:
    try:
        function()
        passed += 1
        print(f"PASS {function.__name__}")
    except Exception:  # noqa: BLE001 - every failure is reported, then counted
        failed += 1
        print(f"FAIL {function.__name__}")
        traceback.print_exc()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
