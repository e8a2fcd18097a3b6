"""The HTTP/1.1 protocol the API serves: uvicorn's httptools (llhttp, in C), with a bound on
a request head that has not arrived whole yet.

Its parser in C costs far less CPU per request than h11's in pure Python; on a busy event
loop that is what keeps the latency tail short (with uvloop, a referral code request went
from 0.82 to 0.55 ms of API CPU: bench/referral_api.py). Unlike h11, httptools sets no limit of its
own on the head: a client trickling header bytes forever would grow the buffered head
without end. This protocol counts the bytes received while a head is incomplete and answers
431 (and closes) once they pass MAX_HEADER_BYTES. A head that arrives whole in one read is
checked by RequestLimits (api/request_limits.py), against the same size.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.request_limits import MAX_HEADER_BYTES

REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
)


def refusal() -> bytes:
    message = f"request headers larger than {MAX_HEADER_BYTES} bytes".encode()
    return REFUSAL % (len(message), message)


class BoundedHeadProtocol(HttpToolsProtocol):
    # Bytes of the reads that ended inside an incomplete head, since the last message ended.
    # A read in which a message ends is not counted (a head then starts within it): the bound
    # is off by at most one read, which keeps the buffered head bounded all the same.
    _head_bytes = 0
    _in_head = True
    _messages = 0  # messages completed on this connection

    def data_received(self, data: bytes) -> None:
        messages = self._messages
        super().data_received(data)
        if self._messages != messages:
            self._head_bytes = 0
        elif self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self.transport.write(refusal())
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._messages += 1
        super().on_message_complete()
