"""Grant checks for API calls, mirroring livekit/livekit ``pkg/service/auth.go``.

* ``ensure_create``: ``video.roomCreate`` (CreateRoom, DeleteRoom).
* ``ensure_list``: ``video.roomList`` (ListRooms).
* ``ensure_admin(room)``: ``video.roomAdmin`` and ``video.room`` equal to the room named in the
  request (everything that acts on one room's participants).
* ``ensure_sip_admin``: ``sip.admin`` (trunk and dispatch-rule management).
* ``ensure_sip_call``: ``sip.call`` (CreateSIPParticipant, TransferSIPParticipant, SendDTMF).

A token that verifies but lacks the grant gets ``permission_denied`` (HTTP 403). LiveKit answers
``unauthenticated`` (401) for both cases; we keep 401 for a bad or missing token, where it is true.
"""

from __future__ import annotations

from roomtone.api.twirp import permission_denied
from roomtone.rtc.tokens import Claims


def ensure_create(claims: Claims) -> None:
    if not claims.video.room_create:
        raise permission_denied("permissions denied: the token lacks the roomCreate grant")


def ensure_list(claims: Claims) -> None:
    if not claims.video.room_list:
        raise permission_denied("permissions denied: the token lacks the roomList grant")


def ensure_admin(claims: Claims, room: str) -> None:
    if not claims.video.room_admin:
        raise permission_denied("permissions denied: the token lacks the roomAdmin grant")
    if claims.video.room != room:
        raise permission_denied(
            f"permissions denied: the token's roomAdmin grant is for room {claims.video.room!r}, not {room!r}"
        )


def ensure_sip_admin(claims: Claims) -> None:
    if not claims.sip.admin:
        raise permission_denied("permissions denied: the token lacks the sip.admin grant")


def ensure_sip_call(claims: Claims) -> None:
    if not claims.sip.call:
        raise permission_denied("permissions denied: the token lacks the sip.call grant")
