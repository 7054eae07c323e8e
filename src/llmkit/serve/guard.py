"""The server's front door, as plain ASGI middleware (it sees each request before FastAPI reads it).

In order: a Host header outside the allowed hosts is refused when no API key is set (a web page
cannot then reach a loopback server through DNS rebinding); a body larger than
`max_request_bytes` gets 413 from its Content-Length before a byte of it is read, or as soon as
a chunked upload passes the limit; `/metrics` and `/openapi.json` need the API key with
`protect_docs`; while the server drains for shutdown, new work gets 503. Every response is counted
under its route's template (unknown paths share the label "other"), so the metrics' label set
stays bounded whatever paths clients invent.
"""

from __future__ import annotations

import hmac
import json

from starlette.exceptions import HTTPException as StarletteHTTPException

OPEN_PATHS = {"/health"}  # liveness probes need no key
DOC_PATHS = {"/metrics", "/openapi.json"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class BodyTooLarge(StarletteHTTPException):
    """Raised from inside the body stream; FastAPI passes HTTP exceptions from middleware through."""

    def __init__(self, limit: int):
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes (raise --max-request-bytes to accept it)"


def host_name(header: str) -> str:
    """'[::1]:8000' -> '::1', 'localhost:80' -> 'localhost'."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def send_error(send, status: int, message: str, code: str, headers: list | None = None) -> None:
    from llmkit.serve.errors import ERROR_TYPES

    body = json.dumps({"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"),
                                 "param": None, "code": code}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await send_error(counting_send, *refusal)
                return
            await self.app(scope, self._limited(scope, receive), counting_send)
        except BodyTooLarge:  # the body outgrew the limit before the app answered
            await send_error(counting_send, 413, too_large(self.state.max_request_bytes), "request_too_large")
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or ("/health" if scope["path"] == "/health" else "other")
            self.state.metrics.requests.labels(label, str(status["code"])).inc()

    def _refusal(self, scope) -> tuple | None:
        """(status, message, code[, headers]) for a request refused before its body is read."""
        state, headers = self.state, dict(scope["headers"])
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if state.api_key is None and state.allowed_hosts and host not in state.allowed_hosts:
            return 400, f"Host {host!r} is not allowed; add it with --allowed-hosts", "host_not_allowed"
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > state.max_request_bytes):
            return 413, too_large(state.max_request_bytes), "request_too_large"
        if scope["path"] in DOC_PATHS and state.protect_docs and not self._authorised(headers):
            return 401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "invalid_api_key"
        if state.draining and scope["path"] not in OPEN_PATHS | DOC_PATHS:
            return 503, "the server is shutting down; retry on another replica", "server_shutting_down", \
                [(b"retry-after", b"1")]
        return None

    def _authorised(self, headers: dict) -> bool:
        if self.state.api_key is None:
            return True
        given = headers.get(b"authorization", b"")
        return hmac.compare_digest(given, f"Bearer {self.state.api_key}".encode())

    def _limited(self, scope, receive):
        limit, seen = self.state.max_request_bytes, {"bytes": 0}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited_receive
