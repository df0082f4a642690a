"""What the SDK checks of `cargo xtask clients` share.

Each script runs as `SCRIPT GATEWAY_URL MOCK_URL BACKEND`: the gateway's root URL, the mock
upstream's root URL (its record of requests is `GET /_mock/requests`, cleared by `DELETE`), and
the kind of backend the gateway has in front of the mock (`anthropic`, `native`, `openai`,
`antigravity` or `gemini`). Only those two loopback URLs are ever contacted.
"""

import json
import sys
import traceback
import urllib.request

GATEWAY, MOCK, BACKEND = sys.argv[1], sys.argv[2], sys.argv[3]

#: The key the gateway accepts; a wrong one must be refused with 401.
CLIENT_KEY = "client-key"

#: The text of a non-streamed answer of the mock in every protocol but Antigravity's.
MOCK_TEXT = "Hello from the mock 世界"

#: The text of a streamed mock answer in every protocol but Chat Completions and Antigravity.
STREAM_TEXT = "tok0 世界🌏 tok1 世界🌏 tok2 世界🌏 "

#: The text of a streamed Chat Completions mock answer (the first chunk carries the role only).
CHAT_STREAM_TEXT = "tok1 世界🌏 tok2 世界🌏 "

#: The signature the mock puts on every thinking block.
MOCK_SIGNATURE = "RXFRQkNnSVlBaElNbW9jay10aGlua2luZy1zaWduYXR1cmUtMDAx"

#: The prefix of the mock's answer after a tool result, in the native protocols.
TOOL_SAID = "The tool said: "

_checks = []


def check(*backends):
    """Register a check, for the given backends only (every backend when none are given)."""

    def register(function):
        if not backends or BACKEND in backends:
            _checks.append(function)
        return function

    return register


def _mock(method):
    request = urllib.request.Request(f"{MOCK}/_mock/requests", method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def clear_upstream():
    """Forget what the mock received so far."""
    _mock("DELETE")


def upstream_requests():
    """What the mock received since the last clear: dicts with method, uri, headers, body."""
    return _mock("GET")


def expect_upstream(fragment):
    """Every request the mock received since the last clear has `fragment` in its path, and at
    least one arrived; returns them."""
    requests = upstream_requests()
    paths = [r["uri"] for r in requests]
    assert paths, "no request reached the upstream"
    assert all(fragment in p for p in paths), f"upstream paths {paths}, expected `{fragment}` in each"
    for r in requests:
        assert CLIENT_KEY not in json.dumps(r["headers"]), f"the client's key reached the upstream: {r['headers']}"
    return requests


def run():
    """Run the registered checks; print one line each and a closing count; exit 1 on failure."""
    passed = failed = 0
    for function in _checks:
        try:
            clear_upstream()
            function()
            passed += 1
            print(f"PASS {BACKEND}: {function.__name__}")
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAIL {BACKEND}: {function.__name__}")
            traceback.print_exc(file=sys.stdout)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)
