"""aiortc's SCTP transport, tuned to send data channel messages at once instead of a loop turn later.

Why: stock aiortc (1.16) ``RTCDataChannel.send`` queues the message and schedules
``_data_channel_flush()`` as a new task, so a relayed data packet leaves only on a later event
loop iteration: after the rest of the receive path (routing, logging, the SCTP SACK to the
sender, which costs a DTLS encryption and a ``sendto``) and after whatever else became ready.
Profiling ``benchmarks/rooms.py`` showed that hop on every relayed packet, plus one task per
receiver. :class:`PromptSctpTransport` runs the same flush coroutine eagerly, inside ``send``:
that coroutine never really suspends (DTLS encryption and aioice's ``sendto`` are synchronous
under their ``await``), so the packet is on the wire when ``send`` returns. Should it ever suspend
(a future aiortc might), the rest continues as an ordinary task, which is exactly what stock
aiortc would have done. Queueing, ordering, congestion window, buffered amount and message size
checks are aiortc's own; only the scheduling differs (Python 3.12's eager tasks do the same
thing generically; this project also runs on 3.11).

It also sends the SACK for received data one loop turn later instead of before the receive
path returns: aiortc acknowledges each received packet at once, after handing its messages on,
which costs a DTLS encryption and a ``sendto`` (~60-70 µs) per packet. Deferred with
``call_soon``, a burst of data packets arriving together on many connections (asyncio reads one
datagram per socket per loop turn) is relayed first and acknowledged right after: the hundredth
SDK's digit reaches its phone without waiting for 99 SACKs. RFC 4960 §6.2 allows up to 200 ms of
delay; this is one loop turn, and a SACK still owed then acknowledges all received so far.

Installed per connection by :func:`tune` (called by ``rtc.peer.Peer`` when aiortc has created the
transport), by switching the instance's class: aiortc constructs the transport inside
``RTCPeerConnection`` and offers no factory hook, and site-packages is never edited.
"""

from __future__ import annotations

import asyncio
import logging

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.rtcsctptransport import (
    WEBRTC_BINARY,
    WEBRTC_BINARY_EMPTY,
    WEBRTC_STRING,
    WEBRTC_STRING_EMPTY,
    RTCSctpTransport,
)

from roomtone.aio import run_eagerly

log = logging.getLogger(__name__)




class PromptSctpTransport(RTCSctpTransport):
    """``RTCSctpTransport`` whose data channel messages are flushed inside ``send`` (see module doc)."""

    def _data_channel_send(self, channel: RTCDataChannel, data: bytes | str) -> None:
        # The same classification and checks as aiortc 1.16's method; only the flush differs.
        if data == "":
            pp_id, user_data = WEBRTC_STRING_EMPTY, b"\x00"
        elif isinstance(data, str):
            pp_id, user_data = WEBRTC_STRING, data.encode("utf8")
        elif data == b"":
            pp_id, user_data = WEBRTC_BINARY_EMPTY, b"\x00"
        else:
            pp_id, user_data = WEBRTC_BINARY, data
        if self._remote_max_message_size and len(user_data) > self._remote_max_message_size:
            raise ValueError(
                f"Cannot send message of {len(user_data)} bytes, the remote party "
                f"only supports messages up to {self._remote_max_message_size} bytes"
            )
        channel._addBufferedAmount(len(user_data))
        self._data_channel_queue.append((channel, pp_id, user_data))
        run_eagerly(self._data_channel_flush(), "SCTP data channel flush")

    _sack_scheduled = False

    async def _send_sack(self) -> None:
        # aiortc 1.16 calls this only from _handle_data, once a received packet's chunks are
        # handled and a SACK is needed: schedule one for the next loop turn (see module doc)
        if not self._sack_scheduled:
            self._sack_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_deferred_sack)

    def _send_deferred_sack(self) -> None:
        self._sack_scheduled = False
        if self._sack_needed:  # still owed (it acknowledges everything received so far)
            run_eagerly(self._send_sack_now(), "SCTP SACK")

    async def _send_sack_now(self) -> None:
        try:
            await RTCSctpTransport._send_sack(self)
        except ConnectionError as exc:  # the DTLS transport closed in between
            log.debug("SCTP SACK not sent: %s", exc)


def tune(pc: RTCPeerConnection) -> None:
    """Make ``pc``'s SCTP transport (once aiortc has created it) a :class:`PromptSctpTransport`."""
    sctp = pc.sctp
    if sctp is not None and type(sctp) is RTCSctpTransport:
        sctp.__class__ = PromptSctpTransport
