"""RTP port allocation from a configured range.

RTP takes an even port and RTCP the odd port above it (RFC 3550 §11). The allocator hands out
candidates round-robin (a port just released is not reused at once, so late packets of a finished
call do not land in a new one) and remembers which are in use. Another process may hold a port we
think is free: :func:`bind_rtp_pair` tries candidates until both sockets bind, and gives up with a
clear :class:`PortRangeExhausted` after one pass over the range.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator

log = logging.getLogger(__name__)


class PortRangeExhausted(RuntimeError):
    """No free even/odd port pair left in the configured range."""


class PortAllocator:
    """Even RTP ports in ``[first, last]`` (inclusive), each with RTCP on ``port + 1``."""

    def __init__(self, first: int = 10000, last: int = 20000) -> None:
        if not (1 <= first <= last <= 65535):
            raise ValueError(f"bad RTP port range {first}-{last}")
        first += first % 2  # start on an even port
        if first + 1 > last:
            raise ValueError(f"RTP port range {first}-{last} holds no even/odd pair")
        self.first = first
        self.last = last
        self._in_use: set[int] = set()
        self._next = first

    @property
    def capacity(self) -> int:
        return (self.last - self.first + 1) // 2

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def candidates(self) -> Iterator[int]:
        """Free even ports, starting after the last one handed out, at most one pass."""
        for _ in range(self.capacity):
            port = self._next
            self._next = port + 2 if port + 3 <= self.last else self.first
            if port not in self._in_use:
                yield port

    def allocate(self) -> int:
        """Reserve the next free even port (no socket is bound)."""
        for port in self.candidates():
            self._in_use.add(port)
            return port
        raise PortRangeExhausted(f"all {self.capacity} RTP port pairs in {self.first}-{self.last} are in use")

    def reserve(self, port: int) -> None:
        self._in_use.add(port)

    def release(self, port: int) -> None:
        self._in_use.discard(port)


def bind_rtp_pair(
    allocator: PortAllocator, host: str, family: int = socket.AF_INET
) -> tuple[socket.socket, socket.socket, int]:
    """Bind non-blocking UDP sockets on an even port and the odd one above it.

    Returns ``(rtp_sock, rtcp_sock, port)``; the port stays reserved until released.
    """
    for port in allocator.candidates():
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError as exc:
            rtp.close()
            rtcp.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                log.debug("RTP port %d busy (%s), trying the next", port, exc)
                continue
            raise
        rtp.setblocking(False)
        rtcp.setblocking(False)
        allocator.reserve(port)
        return rtp, rtcp, port
    raise PortRangeExhausted(
        f"no free RTP port pair on {host} in {allocator.first}-{allocator.last} "
        f"({allocator.in_use} held by roomtone, the rest by other programs)"
    )
