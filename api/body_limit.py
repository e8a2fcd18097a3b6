"""Request body limits for every HTTP endpoint, as one pure ASGI middleware.

A declared Content-Length over the limit is answered 413 at once, before the app runs or a
byte of the body is read; a body without one (chunked) is counted as it streams in, and the
read that passes the limit ends the request with 413. Either way the connection is closed, so
the server does not go on receiving the rest of a body nobody will use.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEBHOOK_PATH = "/webhooks/shopify"
WEBHOOK_LIMIT = 1024 * 1024  # Shopify's order bodies are far smaller; 1 MiB fits any real one
DEFAULT_LIMIT = 64 * 1024  # every other endpoint takes a small JSON object at most


def limit_for(path: str) -> int:
    return WEBHOOK_LIMIT if path == WEBHOOK_PATH else DEFAULT_LIMIT


class BodyTooLargeError(Exception):
    """Raised from `receive` once a streamed body passes its limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
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
            await _too_large(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():  # h11 refused any other form
            # Compared as text past 18 digits: int() refuses very long digit strings.
            return int(value) if len(value) <= 18 else 10**18
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error": f"body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
