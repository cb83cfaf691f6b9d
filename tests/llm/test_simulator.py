"""The client over real sockets against the simulated endpoint, and the simulator's counters."""

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmadmin.errors import LLMError
from llmadmin.llm import ChatRequest, build_messages, chat, chat_blocking, make_async_client
from llmadmin.llm.sim_rules import count_tokens, parse_directives, reply_for
from llmadmin.llm.simulator import SimulatorServer, serve

KEY = "sk-sim-SECRET0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(api_key=KEY, interval_ms=1) as sim:
        yield sim


@pytest.fixture
def sim(server):
    server.reset()
    return server


def req(sim, prompt="hello world", **kw) -> ChatRequest:
    fields = dict(
        base_url=sim.url,
        api_key=KEY,
        model="sim-chat",
        messages=build_messages(prompt),
        temperature=0,
        max_tokens=None,
        timeout=5.0,
        stream=False,
    )
    fields.update(kw)
    return ChatRequest(**fields)


def fails(request: ChatRequest) -> LLMError:
    with pytest.raises(LLMError) as info:
        chat_blocking(request)
    assert KEY not in info.value.message
    return info.value


def gather(requests, max_connections=64):
    async def main():
        async with make_async_client(max_connections=max_connections) as client:
            return await asyncio.gather(
                *(chat(client, r) for r in requests), return_exceptions=True
            )

    return asyncio.run(main())


def wait_until(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# --- pure helpers -----------------------------------------------------------------------


def test_directives_reply_and_tokens_are_deterministic():
    text = "Summarise this [[sim: status=429, retry_after=2.5, key=job-7]] please [[sim:cut=1]]"
    assert parse_directives(text) == {"status": 429, "retry_after": 2.5, "key": "job-7", "cut": 1}
    assert parse_directives("no directive") == {}
    assert reply_for("hi there") == ("[simulated] echo: hi there", "stop")
    assert reply_for("x" * 500)[0] == "[simulated] echo: " + "x" * 200
    assert reply_for("a b c d e", max_tokens=3) == ("[simulated] echo: a", "length")
    assert count_tokens("") == 1 and count_tokens("one two  three") == 3


def test_serve_refuses_non_loopback_host():
    with pytest.raises(ValueError, match="loopback"):
        serve(host="0.0.0.0", port=1)


# --- success over real sockets ----------------------------------------------------------


def test_non_streaming_answer(sim):
    result = chat_blocking(req(sim, "hello world [[sim: latency_ms=1]]"))
    assert result.text == "[simulated] echo: hello world"
    assert (result.prompt_tokens, result.completion_tokens) == (2, 4)
    assert result.finish_reason == "stop" and result.status_code == 200 and not result.streamed


def test_streaming_answer_with_deltas_and_usage(sim):
    deltas = []

    async def main():
        async with make_async_client() as client:
            return await chat(
                client, req(sim, "stream me please", stream=True), on_delta=deltas.append
            )

    result = asyncio.run(main())
    assert result.streamed and result.text == "[simulated] echo: stream me please"
    assert len(deltas) > 1 and "".join(deltas) == result.text
    assert (result.prompt_tokens, result.completion_tokens) == (3, 5)


def test_models_list_and_max_tokens(sim):
    models = httpx.get(sim.url + "/models", trust_env=False).json()
    assert {"sim-chat", "sim-chat-stream"} <= {m["id"] for m in models["data"]}
    result = chat_blocking(req(sim, "one two three four", max_tokens=2))
    assert result.text == "[simulated] echo:" and result.finish_reason == "length"


# --- failures over real sockets ---------------------------------------------------------


def test_wrong_or_missing_key_is_rejected(sim):
    for key in ("sk-wrong-000000000000", None):
        exc = fails(req(sim, api_key=key))
        assert (exc.kind, exc.status_code, exc.retryable) == ("auth", 401, False)


def test_unknown_model_and_wrong_base_url(sim):
    exc = fails(req(sim, model="gpt-4o"))
    assert exc.kind == "model_not_found" and "gpt-4o" in exc.message
    exc = fails(req(sim, base_url=sim.root))  # forgot the /v1
    assert exc.kind == "model_not_found" and "/v1" in exc.message


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limited_with_retry_after(sim, stream):
    exc = fails(req(sim, "x [[sim: status=429, retry_after=2]]", stream=stream))
    assert (exc.kind, exc.retryable, exc.retry_after, exc.status_code) == (
        "rate_limited",
        True,
        2.0,
        429,
    )


def test_server_wide_failure_can_be_switched_on_and_off(sim):
    sim.configure(status=503)
    exc = fails(req(sim))
    assert (exc.kind, exc.status_code, exc.retryable) == ("server_error", 503, True)
    sim.configure(status=None)
    assert chat_blocking(req(sim)).status_code == 200


def test_cut_stream_and_error_event(sim):
    assert fails(req(sim, "x [[sim: cut=1]]", stream=True)).kind == "stream_cut"
    exc = fails(req(sim, "x [[sim: stream_error=1]]", stream=True))
    assert exc.kind == "stream_error" and exc.retryable and "overloaded" in exc.message


@pytest.mark.parametrize(
    "directive, kind, retryable",
    [
        ("html=1", "bad_response", False),
        ("malformed=1", "bad_response", True),
        ("empty_choices=1", "bad_response", False),
        ("context_too_long=1", "context_too_long", False),
        ("status=500", "server_error", True),
        ("status=400", "bad_request", False),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_injected_failures(sim, directive, kind, retryable, stream):
    exc = fails(req(sim, f"x [[sim: {directive}]]", stream=stream))
    assert (exc.kind, exc.retryable) == (kind, retryable)


@pytest.mark.parametrize("directive", ["hang=1", "trickle=1"])
def test_hang_and_trickle_hit_the_total_timeout(sim, directive):
    exc = fails(req(sim, f"x [[sim: {directive}]]", timeout=0.5))
    assert exc.kind == "timeout" and exc.retryable and "0.5 seconds" in exc.message
    # The simulator notices the client went away and stops counting the call as in flight.
    assert wait_until(lambda: sim.stats()["in_flight"] == 0)


def test_connection_refused(sim):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exc = fails(req(sim, base_url=f"http://127.0.0.1:{port}/v1"))
    assert exc.kind == "connection_error" and exc.retryable


def test_fail_times_per_key_then_succeed(sim):
    prompt = "x [[sim: fail_times=2, status=503, key=job-1]]"
    kinds = []
    for _ in range(2):
        kinds.append(fails(req(sim, prompt)).kind)
    assert kinds == ["server_error", "server_error"]
    assert chat_blocking(req(sim, prompt)).text == "[simulated] echo: x"
    other = fails(
        req(sim, "y [[sim: fail_times=1, key=job-2]]")
    )  # a new key fails afresh, 500 default
    assert other.status_code == 500
    stats = sim.stats()
    assert stats["per_key"] == {"job-1": 3, "job-2": 1}
    assert stats["by_status"] == {"503": 2, "200": 1, "500": 1}


def test_unknown_directive_and_config_key_are_rejected(sim):
    assert fails(req(sim, "x [[sim: stauts=500]]")).kind == "bad_request"
    with pytest.raises(httpx.HTTPStatusError):
        sim.configure(stauts=500)


# --- counters ---------------------------------------------------------------------------


def test_stats_count_concurrency_and_rate_window(sim):
    sim.configure(latency_ms=300)
    results = gather([req(sim, f"p{i}") for i in range(20)])
    assert all(r.status_code == 200 for r in results)
    stats = sim.stats()
    assert stats["simulated"] is True
    assert stats["max_in_flight"] == 20 and stats["in_flight"] == 0
    assert stats["total_requests"] == 20 and stats["max_requests_per_60s"] == 20
    assert stats["requests_last_60s"] == 20
    sim.reset()
    after = sim.stats()
    assert (after["total_requests"], after["max_in_flight"], after["max_requests_per_60s"]) == (
        0,
        0,
        0,
    )
    assert "status" not in after["config"] and after["config"]["latency_ms"] == 0


def test_sustains_more_than_128_concurrent_requests(sim):
    results = gather(
        [req(sim, f"p{i} [[sim: latency_ms=1500]]", timeout=30) for i in range(150)],
        max_connections=200,
    )
    assert [type(r) for r in results if not hasattr(r, "text")] == []
    assert sim.stats()["max_in_flight"] >= 128


def test_module_runs_in_the_foreground(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "sim.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmadmin.llm.simulator",
                "--port",
                str(port),
                "--latency-ms",
                "0",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        assert wait_until(lambda: _answers(url), seconds=20), log.read_text()
        result = chat_blocking(
            ChatRequest(
                base_url=url,
                api_key=None,
                model="sim-chat",
                messages=build_messages("ping"),
                timeout=5,
            )
        )
        assert result.text == "[simulated] echo: ping"
        assert "SIMULATED" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/models", trust_env=False, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_echo_messages_answers_with_every_message_in_order(sim):
    turns = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]
    messages = build_messages("three [[sim: echo=messages]]", "sys", turns)
    for stream in (False, True):
        result = chat_blocking(req(sim, messages=messages, stream=stream))
        assert result.text == (
            "[simulated] messages: system: sys | user: one | assistant: two | user: three"
        )
