"""SIP INFO digits in a capture (``application/dtmf-relay`` and ``application/dtmf`` bodies).

Each INFO request is parsed with roomtone's SIP parser and its body with the same
:func:`roomtone.dtmf.info.parse_info_body` the gateway uses, so the report shows what roomtone
would have accepted. Digits are grouped per dialog (Call-ID), under a stream label
``SIP INFO <call-id>``. Findings:

* ``malformed_info``: an INFO request roomtone's SIP parser refuses (the status and reason it would
  answer with), so its digit, if any, is lost;
* ``bad_info_body``: a DTMF INFO whose body roomtone would refuse (the reason it would answer with);
* ``info_retransmission``: the same INFO (Call-ID and CSeq) seen again; counted once;
* ``info_refused``: the INFO was answered with a 3xx-6xx (the receiver did not take the digit);
* ``info_unanswered``: no response to the INFO anywhere in the capture.

INFO requests with other bodies (e.g. ``application/media_control+xml``) are not DTMF and skipped.
SIP over TCP is only seen when the capture reader reassembles it into whole messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from roomtone.analyze.capture import Capture
from roomtone.analyze.registry import AnalyzeOptions
from roomtone.analyze.report import Digit, Finding, Report
from roomtone.dtmf import info as dtmf_info
from roomtone.sip.message import ParseError, Request, Response, parse

SOURCE = "sip-info"


@dataclass(slots=True)
class _Info:
    call_id: str
    cseq: int
    time: float
    label: str
    digit: str | None
    answered: int | None = None


class SipInfoAnalyzer:
    name = SOURCE
    order = 20

    def analyze(self, capture: Capture, report: Report, options: AnalyzeOptions) -> None:
        infos: dict[tuple[str, int], _Info] = {}
        responses: dict[tuple[str, int], int] = {}
        # Read every datagram, not only ``capture.sip``: its classifier misses responses that carry
        # a reason phrase ("SIP/2.0 200 OK"), and the answers to INFO matter here.
        for dg in capture.datagrams:
            if not dg.payload.startswith((b"SIP/2.0 ", b"INFO ")):
                continue
            msg = parse(dg.payload)
            if isinstance(msg, ParseError):
                if msg.is_request and msg.method == "INFO":
                    src = f"{dg.src}:{dg.sport} -> {dg.dst}:{dg.dport}"
                    report.add_finding(Finding(SOURCE, f"SIP INFO {src}", capture.relative(dg.time), "malformed_info",
                                               f"frame {dg.frame}: roomtone would answer {msg.status}: {msg.reason}"))
                continue  # a malformed response cannot be matched to its INFO
            if isinstance(msg, Response):
                cseq, method = msg.cseq  # parse() accepted it, so CSeq is well-formed
                if method == "INFO":
                    key = (msg.call_id, cseq)
                    if msg.status >= 200 and key not in responses:
                        responses[key] = msg.status
                continue
            if not isinstance(msg, Request) or msg.method != "INFO":
                continue
            call_id, (cseq, _) = msg.call_id, msg.cseq
            ctype = (msg.content_type or "").split(";")[0].strip().lower()
            if ctype not in dtmf_info.CONTENT_TYPES:
                continue
            label = f"SIP INFO {call_id}"
            when = capture.relative(dg.time)
            key = (call_id, cseq)
            if key in infos:
                report.add_finding(Finding(SOURCE, label, when, "info_retransmission",
                                           f"INFO CSeq {cseq} sent again (frame {dg.frame}); counted once"))
                continue
            report.stream(label, f"SIP INFO DTMF, {dg.src}:{dg.sport} -> {dg.dst}:{dg.dport}")
            parsed = dtmf_info.parse_info_body(ctype, msg.body)
            if isinstance(parsed, dtmf_info.InfoError):
                infos[key] = _Info(call_id, cseq, when, label, None)
                report.add_finding(Finding(SOURCE, label, when, "bad_info_body",
                                           f"frame {dg.frame}: roomtone would answer {parsed.status}: "
                                           f"{parsed.reason}"))
                continue
            infos[key] = _Info(call_id, cseq, when, label, parsed.digit)
            duration = parsed.duration_ms / 1000 if parsed.duration_ms is not None else None
            report.add_digit(Digit(SOURCE, label, parsed.digit, when, duration, None,
                                   "" if ctype == dtmf_info.DTMF_RELAY else ctype))
        for key, item in infos.items():
            status = responses.get(key)
            if status is None:
                report.add_finding(Finding(SOURCE, item.label, item.time, "info_unanswered",
                                           f"no final response to INFO CSeq {item.cseq} in the capture"))
            elif status >= 300 and item.digit is not None:
                report.add_finding(Finding(SOURCE, item.label, item.time, "info_refused",
                                           f"INFO for {item.digit!r} (CSeq {item.cseq}) answered {status}"))


ANALYZER = SipInfoAnalyzer()
