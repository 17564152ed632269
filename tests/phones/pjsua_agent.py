"""A pjsua2 phone in a subprocess: JSON commands on stdin, JSON events on stdout (one per line).

Run by tests/phones/pjsua.py; not imported by tests (pjsua2 is GPL and test-only, and a crash in
PJSIP must not take pytest down). Everything PJSIP does happens on this script's main thread
(threadCnt=0, libHandleEvents in the loop); stdin is read by a helper thread into a queue.

Commands: {"cmd": "call", "uri": ...} | {"cmd": "answer", "code": 200} | {"cmd": "hangup"} |
{"cmd": "dtmf", "digits": "123", "method": "rfc4733"|"info"|"inband", "duration_ms": 160,
"gap_ms": 100} | {"cmd": "play", "wav": path} | {"cmd": "record", "wav": path} |
{"cmd": "hold"} | {"cmd": "unhold"} | {"cmd": "quit"}. Every command may carry "call" (an id);
the default is the newest call. Each command is acknowledged by {"event": "done", "cmd": ..., "ok":
true|false, "error": ...}.

Events: ready, incoming, call_state, media, dtmf {"digit", "method", "duration_ms"}, done, log.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from typing import Any

import pjsua2 as pj

_out_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    fields = {"event": event, **fields, "t": round(time.monotonic(), 4)}
    with _out_lock:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


METHODS = {"rfc4733": pj.PJSUA_DTMF_METHOD_RFC2833, "info": pj.PJSUA_DTMF_METHOD_SIP_INFO}
METHOD_NAMES = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc4733", pj.PJSUA_DTMF_METHOD_SIP_INFO: "info"}


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: dict[int, Call] = {}
        self.order: list[int] = []
        self.keep: list[Any] = []  # players, recorders, tone generators: must outlive their use
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjsua2-test-phone"
        cfg.logConfig.level = 5 if args.log else 0
        cfg.logConfig.consoleLevel = 0
        if args.log:
            cfg.logConfig.filename = args.log
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = args.port
        tcfg.boundAddress = args.host
        tcfg.publicAddress = args.host
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        if args.tcp:
            self.ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        self._set_codecs(args.codecs.split(","))
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{args.user}@{args.host}:{args.port}"
        acfg.mediaConfig.transportConfig.boundAddress = args.host
        acfg.mediaConfig.transportConfig.publicAddress = args.host
        acfg.mediaConfig.transportConfig.port = args.rtp_port
        acfg.mediaConfig.transportConfig.portRange = 40  # count up from --rtp-port if taken
        # no re-INVITE to lock one codec after a multi-codec answer: SIPp scenarios don't expect it
        acfg.mediaConfig.lockCodecEnabled = False
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        if args.auth_user:
            cred = pj.AuthCredInfo("digest", "*", args.auth_user, 0, args.auth_pass or "")
            acfg.sipConfig.authCreds.append(cred)
        self.account = Account(self)
        self.account.create(acfg)

    def _set_codecs(self, wanted: list[str]) -> None:
        prio = {name.upper(): 255 - i for i, name in enumerate(wanted)}
        for info in self.ep.codecEnum2():
            name = info.codecId.split("/")[0].upper()
            self.ep.codecSetPriority(info.codecId, prio.get(name, 0))

    def current(self, cmd: dict[str, Any]) -> Call:
        cid = cmd.get("call")
        if cid is None:
            if not self.order:
                raise RuntimeError("no call")
            cid = self.order[-1]
        call = self.calls.get(int(cid))
        if call is None:
            raise RuntimeError(f"no call {cid}")
        return call

    def handle(self, cmd: dict[str, Any]) -> bool:
        name = cmd.get("cmd")
        if name == "quit":
            return False
        if name == "call":
            call = Call(self, self.account)
            prm = pj.CallOpParam(True)
            call.makeCall(cmd["uri"], prm)
            self.track(call)
            emit("done", cmd=name, ok=True, call=call.getId())
            return True
        call = self.current(cmd)
        if name == "answer":
            prm = pj.CallOpParam()
            prm.statusCode = int(cmd.get("code", 200))
            call.answer(prm)
        elif name == "hangup":
            prm = pj.CallOpParam()
            prm.statusCode = int(cmd.get("code", 603))
            call.hangup(prm)
        elif name == "dtmf":
            self.send_dtmf(call, cmd)
        elif name == "play":
            player = pj.AudioMediaPlayer()
            player.createPlayer(cmd["wav"], pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(call.getAudioMedia(-1))
            self.keep.append(player)
        elif name == "record":
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(cmd["wav"])
            call.getAudioMedia(-1).startTransmit(rec)
            self.keep.append(rec)
        elif name == "hold":
            call.setHold(pj.CallOpParam(True))
        elif name == "unhold":
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(prm)
        else:
            raise RuntimeError(f"unknown command {name!r}")
        emit("done", cmd=name, ok=True, call=call.getId())
        return True

    def send_dtmf(self, call: Call, cmd: dict[str, Any]) -> None:
        method = cmd.get("method", "rfc4733")
        duration = int(cmd.get("duration_ms", 160))
        if method == "inband":
            gen = pj.ToneGenerator()
            gen.createToneGenerator(8000, 1)
            digits = pj.ToneDigitVector()
            for d in cmd["digits"]:
                td = pj.ToneDigit()
                td.digit = d
                td.on_msec = duration
                td.off_msec = int(cmd.get("gap_ms", 100))
                td.volume = 0
                digits.append(td)
            gen.startTransmit(call.getAudioMedia(-1))
            gen.playDigits(digits, False)
            self.keep.append(gen)
            return
        prm = pj.CallSendDtmfParam()
        prm.method = METHODS[method]
        prm.duration = duration
        prm.digits = cmd["digits"]
        call.sendDtmf(prm)

    def track(self, call: Call) -> None:
        self.calls[call.getId()] = call
        self.order.append(call.getId())


class Account(pj.Account):
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self.phone, self, prm.callId)
        self.phone.track(call)
        info = call.getInfo()
        emit("incoming", call=prm.callId, remote_uri=info.remoteUri, sdp=prm.rdata.wholeMsg.split("\r\n\r\n", 1)[-1])
        if self.phone.args.auto_answer:
            op = pj.CallOpParam()
            op.statusCode = 200
            call.answer(op)


class Call(pj.Call):
    def __init__(self, phone: Phone, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.phone = phone

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        emit("call_state", call=info.id, state=info.stateText, code=info.lastStatusCode,
             reason=info.lastReason)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                emit("media", call=info.id, status=int(mi.status),
                     active=mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE, direction=int(mi.dir))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        emit("dtmf", call=self.getId(), digit=prm.digit, method=METHOD_NAMES.get(prm.method, str(prm.method)),
             duration_ms=None if prm.duration >= 0xFFFF else int(prm.duration))  # unknown for RFC 4733 starts

    def onDtmfEvent(self, prm: pj.OnDtmfEventParam) -> None:
        # RFC 4733: a start, updates every packet (flag 1) and an end (flag 2, PJMEDIA_STREAM_DTMF_IS_END);
        # one call for a SIP INFO digit. Gives durations, which onDtmfDigit lacks for RFC 4733.
        emit("dtmf_event", call=self.getId(), digit=prm.digit,
             method=METHOD_NAMES.get(prm.method, str(prm.method)), duration_ms=int(prm.duration),
             update=bool(prm.flags & 1), end=bool(prm.flags & 2), flags=int(prm.flags), timestamp=int(prm.timestamp))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rtp-port", type=int, default=21500)
    ap.add_argument("--user", default="pjsua")
    ap.add_argument("--auth-user")
    ap.add_argument("--auth-pass")
    ap.add_argument("--codecs", default="PCMU,PCMA,G722")
    ap.add_argument("--auto-answer", action="store_true")
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--log")
    args = ap.parse_args()

    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                commands.put(json.loads(line))
            except ValueError as exc:
                emit("done", cmd=None, ok=False, error=f"bad JSON: {exc}")
        commands.put(None)

    phone = Phone(args)
    threading.Thread(target=read_stdin, daemon=True).start()
    emit("ready", port=args.port, uri=f"sip:{args.user}@{args.host}:{args.port}",
         version=phone.ep.libVersion().full)
    running = True
    while running:
        phone.ep.libHandleEvents(10)
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd is None:
                running = False
                break
            try:
                running = phone.handle(cmd)
            except Exception as exc:  # report, keep the phone alive
                emit("done", cmd=cmd.get("cmd"), ok=False, error=str(exc))
    phone.ep.hangupAllCalls()
    for _ in range(20):
        phone.ep.libHandleEvents(10)
    phone.ep.libDestroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
