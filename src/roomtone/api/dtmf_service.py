"""The ``roomtone.SIP`` twirp service: ``SendDTMF``, an extension LiveKit lacks (livekit/sip#268).

LiveKit has no server API that makes a SIP participant play DTMF to its phone; a room participant
must publish ``sip_dtmf`` over WebRTC. ``POST /twirp/roomtone.SIP/SendDTMF`` does it from any HTTP
client with a ``sip.call`` grant plus ``roomAdmin`` on the room:

``SendDTMFRequest``: ``room`` (1), ``identity`` (2, the SIP participant), ``digits`` (3, a
sequence such as ``"12w#"``; pauses ``w`` ``,`` = 0.5 s, ``W`` = 1 s), ``method`` (4: ``""`` = the
trunk's DTMF mode, or ``auto``, ``rfc4733``, ``info``, ``inband``), ``wait`` (5: answer only after
the last tone has been sent).

``SendDTMFResponse``: ``sip_call_id`` (1), ``digits`` (2, the canonical digits queued),
``method`` (3, the method used).

The messages are built at import time from a descriptor (there is no .proto compiler step in this
project); protobuf and JSON bodies both work, as for the LiveKit services. Clients in Python import
:data:`SendDTMFRequest` and :data:`SendDTMFResponse` from this module.
"""

from __future__ import annotations

import logging
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from roomtone.api.grants import ensure_admin, ensure_sip_call
from roomtone.api.twirp import Service, TwirpError, invalid_argument
from roomtone.rtc.tokens import Claims
from roomtone.telephony.errors import TelephonyError

log = logging.getLogger(__name__)

SERVICE = "roomtone.SIP"
METHODS = ("", "auto", "rfc4733", "info", "inband")


def _build_messages() -> tuple[type[Message], type[Message]]:
    fdp = descriptor_pb2.FileDescriptorProto(name="roomtone/sip_dtmf.proto", package="roomtone", syntax="proto3")
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    boolean = descriptor_pb2.FieldDescriptorProto.TYPE_BOOL
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    req = fdp.message_type.add(name="SendDTMFRequest")
    for number, (name, ftype) in enumerate(
        [("room", string), ("identity", string), ("digits", string), ("method", string), ("wait", boolean)], 1
    ):
        req.field.add(name=name, number=number, type=ftype, label=optional, json_name=name)
    resp = fdp.message_type.add(name="SendDTMFResponse")
    for number, name in enumerate(["sip_call_id", "digits", "method"], 1):
        json_name = "".join(p if i == 0 else p.capitalize() for i, p in enumerate(name.split("_")))
        resp.field.add(name=name, number=number, type=string, label=optional, json_name=json_name)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("roomtone.SendDTMFRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("roomtone.SendDTMFResponse")),
    )


SendDTMFRequest, SendDTMFResponse = _build_messages()


def build_service(telephony: Any) -> Service:
    svc = Service(SERVICE)

    async def send_dtmf(claims: Claims, req: Any) -> Message:
        ensure_sip_call(claims)
        ensure_admin(claims, req.room)
        if not req.room or not req.identity:
            raise invalid_argument("room and identity are required")
        if not req.digits:
            raise invalid_argument("digits must not be empty")
        if req.method not in METHODS:
            raise invalid_argument(f"method {req.method!r}: expected one of auto, rfc4733, info, inband")
        send = getattr(telephony, "send_dtmf", None)
        if send is None:
            raise TwirpError("unavailable", "SendDTMF is not available: no SIP gateway is running")
        try:
            call_id, digits, method = await send(
                room=req.room, identity=req.identity, digits=req.digits, method=req.method, wait=req.wait
            )
        except TelephonyError as exc:
            raise TwirpError(exc.code, exc.message, exc.meta) from None
        log.info("SendDTMF %r to %s in %s (call %s, %s)", digits, req.identity, req.room, call_id, method)
        return SendDTMFResponse(sip_call_id=call_id, digits=digits, method=method)

    svc.method("SendDTMF", SendDTMFRequest, send_dtmf)
    return svc
