"""An in-process network between sans-IO RTP sessions: virtual time, delay, loss, reordering."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from roomtone.media.session import RtpSession


@dataclass
class Path:
    """What happens to each datagram on the way: loss, duplication, delay plus jitter."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.01
    jitter: float = 0.0
    seed: int = 1
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def fate(self) -> list[float]:
        if self.rng.random() < self.loss:
            return []
        copies = 2 if self.rng.random() < self.duplicate else 1
        return [self.delay + self.rng.uniform(0, self.jitter) for _ in range(copies)]


class Net:
    """Sessions addressed by (host, port); ``run(seconds)`` advances virtual time in 5 ms steps."""

    def __init__(self, step: float = 0.005) -> None:
        self.now = 0.0
        self.step = step
        self.nodes: dict[tuple[str, int], RtpSession] = {}
        self.addr_of: dict[int, tuple[str, int]] = {}
        self.paths: dict[tuple[str, int], Path] = {}  # by destination RTP address
        self._queue: list[tuple[float, int, bytes, tuple[str, int], tuple[str, int], bool]] = []
        self._n = 0
        self.events: dict[int, list[object]] = {}
        self.audio: dict[int, list] = {}

    def add(self, session: RtpSession, addr: tuple[str, int], path: Path | None = None) -> None:
        self.nodes[addr] = session
        self.addr_of[id(session)] = addr
        self.paths[addr] = path or Path()
        self.events[id(session)] = []
        self.audio[id(session)] = []

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + self.step, 9)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, data, src, dst, rtcp = heapq.heappop(self._queue)
                base = (dst[0], dst[1] - 1) if rtcp else dst
                node = self.nodes.get(base)
                if node is None:
                    continue
                if rtcp:
                    node.receive_rtcp(data, (src[0], src[1] + 1), self.now)
                else:
                    node.receive_rtp(data, src, self.now)
            for addr, s in self.nodes.items():
                s.tick(self.now)
                for data, dst, rtcp in s.take_datagrams():
                    base = (dst[0], dst[1] - 1) if rtcp else dst
                    path = self.paths.get(base, Path())
                    for d in path.fate():
                        self._n += 1
                        heapq.heappush(self._queue, (self.now + d, self._n, data, addr, dst, rtcp))
                self.events[id(s)].extend(s.take_events())
                self.audio[id(s)].extend(s.read_audio())
