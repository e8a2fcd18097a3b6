"""Request size limits for every HTTP endpoint, as one pure ASGI middleware.

Headers: more than MAX_HEADER_BYTES in all (names and values) is 431 before the app runs.
(The HTTP protocol, api/http_protocol.py, bounds a head that has not arrived whole yet, i.e.
one trickled in, to the same size; a head read in one go reaches us, and stops here.)

Bodies: a declared Content-Length over the limit is answered 413 at once, before the app runs
or a byte of the body is read; a body without one (chunked) is counted as it streams in, and
the read that passes the limit ends the request with 413. Either way the connection is closed,
so the server does not go on receiving the rest of a body nobody will use.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEBHOOK_PATH = "/webhooks/shopify"
WEBHOOK_LIMIT = 1024 * 1024  # Shopify's order bodies are far smaller; 1 MiB fits any real one
DEFAULT_LIMIT = 64 * 1024  # every other endpoint takes a small JSON object at most
MAX_HEADER_BYTES = 16 * 1024  # Shopify's and our callers' headers are well under 2 KiB


def limit_for(path: str) -> int:
    return WEBHOOK_LIMIT if path == WEBHOOK_PATH else DEFAULT_LIMIT


class BodyTooLargeError(Exception):
    """Raised from `receive` once a streamed body passes its limit."""


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            await _refuse(send, 431, f"request headers larger than {MAX_HEADER_BYTES} bytes")
            return
        limit = limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, f"body larger than {limit} bytes")
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLargeError:
            if started:  # the app answered before reading it all: nothing left to say
                raise
            await _refuse(send, 413, f"body larger than {limit} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():  # the parser refused any other form
            # Compared as text past 18 digits: int() refuses very long digit strings.
            return int(value) if len(value) <= 18 else 10**18
    return None


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
