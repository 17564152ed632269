"""Fan-out of media tracks between participants, with aiortc's ``MediaRelay``.

A published track (from a WebRTC publisher, or a SIP bridge's own ``MediaStreamTrack``) gets one
relay; every consumer calls :func:`subscribe` for its own copy. :func:`keep_draining` makes sure
the source is read even with no subscribers, because aiortc's remote tracks queue frames without
bound until someone reads them.

aiortc is not an SFU: received audio is decoded once and re-encoded per subscriber. That is fine
for a few participants per room and for bridging calls; forwarding RTP unchanged would be the
step for large rooms.
"""

from __future__ import annotations

import asyncio
import logging

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

_drains: set[asyncio.Task[None]] = set()
_RELAY_ATTR = "_roomtone_relay"


def subscribe(track: MediaStreamTrack, buffered: bool = False) -> MediaStreamTrack:
    """A new consumer's copy of ``track``; stop it when done."""
    # The relay lives on the track itself (a weak-keyed map would never release it: the relay
    # refers to its source track), so both go away together.
    relay = getattr(track, _RELAY_ATTR, None)
    if relay is None:
        relay = MediaRelay()
        setattr(track, _RELAY_ATTR, relay)
    return relay.subscribe(track, buffered=buffered)


def keep_draining(track: MediaStreamTrack) -> None:
    """Read ``track`` until it ends, discarding frames (see the module docstring)."""
    proxy = subscribe(track)

    async def drain() -> None:
        try:
            while True:
                await proxy.recv()
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            proxy.stop()

    task = asyncio.ensure_future(drain())
    _drains.add(task)
    task.add_done_callback(_drains.discard)
