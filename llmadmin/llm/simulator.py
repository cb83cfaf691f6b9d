"""A SIMULATED OpenAI-compatible endpoint for demos, tests and benchmarks (not a real model).

A bare ASGI app served by uvicorn on 127.0.0.1 only. Replies are deterministic and start
with "[simulated] ". Failures are injected per request with a directive in the last user
message, ``[[sim: status=503, fail_times=2, key=job-7]]``, or server-wide through
``POST /_sim/config``. ``GET /_sim/stats`` reports in-flight and rate counters so
benchmarks can prove concurrency and requests-per-minute limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import threading
import time

import httpx
import uvicorn

from llmadmin.llm.sim_rules import (
    CONFIG_KEYS,
    DIRECTIVE,
    DIRECTIVES,
    FAILURES,
    HANG_SECONDS,
    HTML_PAGE,
    LOOPBACK,
    MODELS,
    TRICKLE_SECONDS,
    SimState,
    count_tokens,
    error_body,
    last_user_text,
    parse_directives,
    prompt_tokens,
    reply_for,
)

logger = logging.getLogger(__name__)


class Exchange:
    """One HTTP request/response on the ASGI interface, with disconnect detection."""

    def __init__(self, scope: dict, receive, send) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.gone = asyncio.Event()
        self.status = 0

    async def read_body(self) -> bytes:
        """Read the whole request body."""
        chunks, more = [], True
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def watch(self) -> None:
        """Set ``gone`` when the client disconnects."""
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone.set()

    async def pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True if the client went away."""
        if seconds > 0 and not self.gone.is_set():
            try:
                async with asyncio.timeout(seconds):
                    await self.gone.wait()
            except TimeoutError:
                pass
        return self.gone.is_set()

    def header(self, name: bytes) -> str:
        """The request header ``name`` (lower-case bytes) or ''."""
        return next((v.decode("latin-1") for k, v in self.scope["headers"] if k == name), "")

    async def start(self, status: int, content_type: str, extra: list | None = None) -> None:
        """Send the status line and headers."""
        self.status = status
        headers = [
            (b"content-type", content_type.encode()),
            (b"x-simulated", b"true"),
            *(extra or []),
        ]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes, trickle: bool = False) -> bool:
        """Send ``data`` (byte by byte when trickling); return True if the client went away."""
        pieces = [data[i : i + 1] for i in range(len(data))] if trickle else [data]
        for piece in pieces:
            await self.send({"type": "http.response.body", "body": piece, "more_body": True})
            if trickle and await self.pause(TRICKLE_SECONDS):
                return True
        return self.gone.is_set()

    async def finish(self) -> None:
        """End the response body."""
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: list | None = None,
        trickle: bool = False,
    ) -> int:
        """Send a whole response; return its status."""
        length = [] if trickle else [(b"content-length", str(len(body)).encode())]
        await self.start(status, content_type, [*length, *(extra or [])])
        if not await self.write(body, trickle):
            await self.finish()
        return status


class SimulatorApp:
    """The ASGI application."""

    def __init__(
        self, latency_ms: float = 0, api_key: str | None = None, interval_ms: float = 5
    ) -> None:
        self.state = SimState(latency_ms=latency_ms, api_key=api_key, interval_ms=interval_ms)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return  # lifespan is switched off in the uvicorn config
        ex = Exchange(scope, receive, send)
        body = await ex.read_body()
        route = (scope["method"], scope["path"].rstrip("/"))
        if route == ("POST", "/v1/chat/completions"):
            await self.chat(ex, body)
        elif route == ("GET", "/v1/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "simulator"} for m in MODELS
            ]
            await ex.respond(200, json.dumps({"object": "list", "data": data}).encode())
        elif route == ("GET", "/_sim/stats"):
            await ex.respond(200, json.dumps(self.state.snapshot()).encode())
        elif route == ("POST", "/_sim/reset"):
            self.state.reset()
            await ex.respond(200, json.dumps(self.state.snapshot()).encode())
        elif route == ("POST", "/_sim/config"):
            await self.configure(ex, body)
        else:
            await ex.respond(404, error_body(404, f"Unknown path {scope['path']}", "not_found"))

    async def configure(self, ex: Exchange, body: bytes) -> None:
        """Merge a JSON object into the server-wide defaults (null removes a key)."""
        try:
            changes = json.loads(body or b"{}")
            unknown = set(changes) - CONFIG_KEYS
        except (ValueError, TypeError):
            changes, unknown = None, set()
        if not isinstance(changes, dict) or unknown:
            await ex.respond(
                400, error_body(400, f"Unknown or invalid config keys: {sorted(unknown)}")
            )
            return
        for key, value in changes.items():
            if value is None:
                self.state.config.pop(key, None)
            else:
                self.state.config[key] = value
        await ex.respond(200, json.dumps(self.state.snapshot()["config"]).encode())

    async def chat(self, ex: Exchange, body: bytes) -> None:
        """Answer one chat-completions request, counting it in the stats."""
        try:
            request = json.loads(body)
            assert isinstance(request, dict) and isinstance(request.get("messages", []), list)
            request["messages"] = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        except (ValueError, AssertionError):
            self.state.started(None)
            self.state.finished(
                await ex.respond(400, error_body(400, "Could not parse the JSON body"))
            )
            return
        prompt_raw = last_user_text(request["messages"])
        options = {k: v for k, v in self.state.config.items() if k in DIRECTIVES}
        options.update(parse_directives(prompt_raw))
        prompt = DIRECTIVE.sub("", prompt_raw).strip()
        key = (
            str(options["key"])
            if "key" in options
            else (prompt if "fail_times" in options else None)
        )
        seen = self.state.started(key)
        watcher = asyncio.ensure_future(ex.watch())
        try:
            await self.answer(ex, request, options, prompt, seen)
        finally:
            watcher.cancel()
            self.state.finished(ex.status or 499)  # 499: the client went away first

    async def answer(self, ex: Exchange, request: dict, opt: dict, prompt: str, seen: int) -> None:
        """Apply auth, model check, latency and injected failures, then reply."""
        api_key = self.state.config.get("api_key")
        if api_key and ex.header(b"authorization") != f"Bearer {api_key}":
            await ex.respond(401, error_body(401))
            return
        model = str(request.get("model") or "")
        if not model.startswith("sim"):
            await ex.respond(404, error_body(404, f"The model `{model}` does not exist"))
            return
        unknown = set(opt) - DIRECTIVES
        if unknown:
            await ex.respond(
                400, error_body(400, f"Unknown [[sim: ...]] directive(s): {sorted(unknown)}")
            )
            return
        fail = any(opt.get(k) for k in FAILURES) or "fail_times" in opt
        if "fail_times" in opt:  # fail only the first N requests carrying the key
            fail = seen <= int(opt["fail_times"])
        if await ex.pause(float(opt.get("latency_ms", 0)) / 1000):
            return
        if fail and await self.fail(ex, opt, request):
            return
        echoed = request["messages"] if opt.get("echo") == "messages" else None
        text, finish = reply_for(prompt, request.get("max_tokens"), echoed)
        usage = {
            "prompt_tokens": prompt_tokens(request["messages"]),
            "completion_tokens": count_tokens(text),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        trickle = bool(fail and opt.get("trickle"))
        if request.get("stream"):
            await self.stream(ex, request, opt, fail, text, finish, usage)
            return
        choices = (
            []
            if fail and opt.get("empty_choices")
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ]
        )
        payload = {
            "id": f"chatcmpl-sim-{self.state.total}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "simulated",
            "choices": choices,
            "usage": usage,
        }
        await ex.respond(200, json.dumps(payload).encode(), trickle=trickle)

    async def fail(self, ex: Exchange, opt: dict, request: dict) -> bool:
        """Send an injected failure response; return False when the failure is in the body."""
        if opt.get("hang"):
            await ex.pause(HANG_SECONDS)
            return True
        if opt.get("context_too_long"):
            words = prompt_tokens(request["messages"])
            message = (
                f"This model's maximum context length is 4096 tokens. However, your messages "
                f"resulted in {4096 + words} tokens. Please reduce the length of the messages"
            )
            await ex.respond(400, error_body(400, message, "context_length_exceeded"))
            return True
        status = int(opt.get("status") or (0 if any(opt.get(k) for k in FAILURES) else 500))
        if status >= 300:
            extra = (
                [(b"retry-after", str(opt["retry_after"]).encode())] if "retry_after" in opt else []
            )
            await ex.respond(status, error_body(status), extra=extra)
            return True
        if opt.get("html"):
            await ex.respond(200, HTML_PAGE, "text/html; charset=utf-8")
            return True
        if opt.get("malformed"):
            await ex.respond(
                200, b'{"id": "chatcmpl-sim", "object": "chat.completion", "choices": [{"ind'
            )
            return True
        return False

    async def stream(
        self,
        ex: Exchange,
        request: dict,
        opt: dict,
        failing: bool,
        text: str,
        finish: str,
        usage: dict,
    ) -> None:
        """Stream the reply as server-sent events, applying stream failures when ``failing``."""
        fail = opt if failing else {}
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-sim-{self.state.total}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request["model"],
            "system_fingerprint": "simulated",
        }

        def chunk(delta: dict | None, finish_reason: str | None = None, **extra) -> str:
            choices = (
                []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
            )
            return json.dumps(
                {**base, "choices": choices, **({"usage": None} if include_usage else {}), **extra}
            )

        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": p}) for p in pieces] + [chunk({}, finish)]
        if fail.get("empty_choices"):
            events = []
        if include_usage:
            events.append(chunk(None, usage=usage))
        events.append("[DONE]")
        if fail.get("cut"):
            events = events[:3]
        elif fail.get("stream_error"):
            events = events[:3] + [
                json.dumps(
                    {
                        "error": {
                            "message": "The server is overloaded, please try again later (simulated)",
                            "type": "server_error",
                            "param": None,
                            "code": "overloaded",
                        }
                    }
                )
            ]
        await ex.start(200, "text/event-stream; charset=utf-8", [(b"cache-control", b"no-cache")])
        interval = float(opt.get("interval_ms", 0)) / 1000
        for index, event in enumerate(events):
            if await ex.write(f"data: {event}\n\n".encode(), bool(fail.get("trickle"))):
                return
            if index < len(events) - 1 and await ex.pause(interval):
                return
        await ex.finish()


def _check_host(host: str) -> None:
    if host not in LOOPBACK:
        raise ValueError(f"The simulator only listens on the loopback interface, not {host!r}.")


class SimulatorServer:
    """Run the simulated endpoint on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(
        self,
        port: int = 0,
        latency_ms: float = 0,
        api_key: str | None = None,
        interval_ms: float = 5,
    ) -> None:
        self.app = SimulatorApp(latency_ms=latency_ms, api_key=api_key, interval_ms=interval_ms)
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a model row should use, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root}/v1"

    def start(self) -> SimulatorServer:
        """Bind the port and serve until ``stop``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"llm-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError("The simulated LLM endpoint did not start.")
        logger.info("SIMULATED OpenAI-compatible endpoint (not a real model) at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        response = httpx.request(
            method, self.root + path, json=payload, trust_env=False, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        """Return the counters of ``GET /_sim/stats``."""
        return self._call("GET", "/_sim/stats")

    def reset(self) -> dict:
        """Zero the counters and restore the start-up defaults."""
        return self._call("POST", "/_sim/reset")

    def configure(self, **changes) -> dict:
        """Set server-wide defaults (``status=503``, ``latency_ms=50``...; None removes one)."""
        return self._call("POST", "/_sim/config", changes)


def serve(
    host: str = "127.0.0.1",
    port: int = 8099,
    latency_ms: float = 300,
    api_key: str | None = None,
    interval_ms: float = 20,
) -> None:
    """Run the simulated endpoint in the foreground until interrupted."""
    _check_host(host)
    app = SimulatorApp(latency_ms=latency_ms, api_key=api_key, interval_ms=interval_ms)
    logger.warning(
        "SIMULATED OpenAI-compatible endpoint (not a real model) at http://%s:%d/v1 "
        "(latency %s ms)",
        host,
        port,
        latency_ms,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        timeout_graceful_shutdown=5,
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m llmadmin.llm.simulator --port 8099``."""
    parser = argparse.ArgumentParser(description="Run a SIMULATED OpenAI-compatible endpoint.")
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency-ms", type=float, default=300)
    parser.add_argument("--interval-ms", type=float, default=20, help="delay between stream chunks")
    parser.add_argument("--api-key", default=None, help="require this Bearer key")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(args.host, args.port, args.latency_ms, args.api_key, args.interval_ms)


if __name__ == "__main__":
    main()
