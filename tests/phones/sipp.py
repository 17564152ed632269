"""SIPp (Debian ``sip-tester`` 3.6.1) runner: scenario XML from templates, run, collect results.

SIPp 3.6.1 answers digest challenges with MD5 only (``[authentication]``; SHA-256 came in later
releases). It sends DTMF as SIP INFO from the scenario (``info_dtmf`` in :func:`uac_scenario`) and can
play RTP from a pcap (``<exec play_pcap_audio=...>``), which is how RFC 4733 and in-band digits reach
a peer from SIPp. It has no DTMF receiver; a UAS scenario records what arrives in its message log.

Templates use ``{{name}}`` placeholders (SIPp itself uses ``[...]`` keywords, so no str.format).
Hand-written scenarios for flows the templates do not cover (CANCEL, re-INVITE hold, OPTIONS, BYE
from either side) live in ``tests/sip/scenarios/``; :func:`scenario_file` reads one.

This is the one SIPp runner: synchronous tests call :meth:`Sipp.wait` (or :func:`run_sipp`),
asyncio tests whose loop also runs roomtone await :meth:`Sipp.finished` so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .common import HOST, ChildProcess, PhoneError, free_port

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
#: hand-written scenario XML (``uac_*.xml`` call roomtone, ``uas_*.xml`` answer it).
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "sip" / "scenarios"


def scenario_file(name: str) -> str:
    """The XML of ``tests/sip/scenarios/<name>``, for :class:`Sipp`."""
    return (SCENARIO_DIR / name).read_text()


def render(template: str, **values: object) -> str:
    """Fill ``{{name}}`` placeholders; a placeholder left unfilled is an error, not silent text."""
    out = template
    for name, value in values.items():
        out = out.replace("{{" + name + "}}", str(value))
    if "{{" in out:
        start = out.index("{{")
        raise PhoneError(f"unfilled placeholder {out[start:out.index('}}', start) + 2]}")
    return out


_SDP = """v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=sipp
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""

#: INVITE, optional digest retry, ACK, optional INFO digits / pcap playback, pause, BYE.
#: a SIPp phone's SDP offering PCMU and telephone-event 0-16 only (for scenarios written inline)
PCMU_SDP = """v=0
o=sipp 1 1 IN IP4 [local_ip]
s=sipp
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
"""

#: a SIPp <send> answering the request just received with a body-less 200 OK
OK_TO_LAST = """  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""

def callee_response(status: str, *, headers: str = "", body: str = "", retrans: bool = False,
                    tag: str = "01") -> str:
    """A SIPp ``<send>`` answering the INVITE just received, as the callee of an inline scenario
    (To tag ``[pid]SIPpTag<tag>[call_number]``: another ``tag`` is another fork; Contact, Allow).
    ``headers``: extra lines, each ending in a newline; ``body``: an SDP (Content-Type added);
    ``retrans``: until acknowledged."""
    ctype = "Content-Type: application/sdp\n" if body else ""
    attr = ' retrans="500"' if retrans else ""
    return f"""  <send{attr}><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag{tag}[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port]>
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO
{headers}{ctype}Content-Length: [len]

{body}]]></send>
"""


#: the From user of the inline caller scenarios (``sip:15550123@[local_ip]``, tag ``[pid]SIPpTag00[call_number]``)
CALLER = "15550123"

_IN_DIALOG = """  <send{{retrans}}><![CDATA[
{{method}} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={{branch}}
From: sipp <sip:{{user}}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {{cseq}} {{method}}
Max-Forwards: 70
{{content_type}}Content-Length: {{length}}

{{body}}]]></send>
"""


def caller_request(method: str, cseq: int, *, user: str = CALLER, branch: str = "[branch]",
                   content_type: str = "", body: str = "") -> str:
    """A SIPp <send> of a request inside the caller's dialog (To carries the tag last received:
    the 183's in an early dialog, the 200's after it). Requests other than ACK are retransmitted
    every 500 ms until answered, as UDP asks."""
    return render(_IN_DIALOG, retrans="" if method == "ACK" else ' retrans="500"', method=method, branch=branch,
                  user=user, cseq=cseq, content_type=f"Content-Type: {content_type}\n" if content_type else "",
                  length="[len]" if body else "0", body=body)


_CALLER_INVITE = """  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:{{user}}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
{{headers}}Content-Type: application/sdp
Content-Length: [len]

{{sdp}}]]></send>
"""


def caller_invite(headers: str = "", *, user: str = CALLER, sdp: str = PCMU_SDP) -> str:
    """A SIPp <send> of the caller's INVITE (CSeq 1) offering ``sdp``; ``headers``: extra header
    lines, each ending in a newline."""
    return render(_CALLER_INVITE, user=user, headers=headers, sdp=sdp)


#: a SIPp <send> ACKing the 200 to the caller's INVITE (CSeq 1)
CALLER_ACK = caller_request("ACK", 1)

UAC_TEMPLATE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="roomtone uac">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO
Content-Type: application/sdp
Content-Length: [len]

{{sdp}}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
{{auth_block}}
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {{ack_cseq}} ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
{{media_block}}
{{info_block}}
  <pause milliseconds="{{hold_ms}}"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {{bye_cseq}} BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""

_AUTH_BLOCK = """  <recv response="{{code}}" auth="true"/>
{{ack}}  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{{sdp}}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
"""

_INFO = """  <send retrans="500"><![CDATA[
INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {{cseq}} INFO
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal={{digit}}
Duration={{duration}}
]]></send>
  <recv response="200"/>
  <pause milliseconds="{{gap}}"/>
"""


def uac_scenario(*, info_dtmf: str = "", info_duration_ms: int = 160, info_gap_ms: int = 200,
                 pcap: str | None = None, hold_ms: int = 500, auth_code: int | None = None) -> str:
    """A caller: INVITE (PCMU/PCMA/telephone-event), ACK, then INFO digits and/or a pcap, BYE.

    ``auth_code=401`` or ``407`` expects one challenge and retries with ``-au``/``-ap`` credentials.
    ``pcap``: RTP to play after ACK (e.g. RFC 4733 events or in-band tones made by roomtone).
    """
    cseq = 2 if auth_code else 1
    auth_block = render(_AUTH_BLOCK, code=auth_code, sdp=_SDP,
                        ack=caller_request("ACK", 1, user="sipp", branch="[branch-1]")) if auth_code else ""
    infos = []
    for i, digit in enumerate(info_dtmf):
        infos.append(render(_INFO, cseq=cseq + 1 + i, digit=digit, duration=info_duration_ms, gap=info_gap_ms))
    media = f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>' if pcap else ""
    return render(UAC_TEMPLATE, sdp=_SDP, auth_block=auth_block, ack_cseq=cseq, media_block=media,
                  info_block="".join(infos), hold_ms=hold_ms, bye_cseq=cseq + 1 + len(info_dtmf))


#: A callee: 100/180/200 with SDP, waits for ACK, answers INFO (any number) and the caller's BYE.
#: The INFO answer jumps straight back (``next`` on the send): a separate ``<nop next>`` leaves the
#: call parked on the nop, where SIPp 3.6.1 rejects an INFO that arrives meanwhile as unexpected.
UAS_TEMPLATE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="roomtone uas">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO
Content-Type: application/sdp
Content-Length: [len]

{{sdp}}
]]></send>
  <recv request="ACK" crlf="true"/>
  <label id="1"/>
  <recv request="INFO" optional="true" next="2"/>
  <recv request="BYE" next="3"/>
  <label id="2"/>
  <send next="1"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="3"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <timewait milliseconds="500"/>
</scenario>
"""


def uas_scenario() -> str:
    return render(UAS_TEMPLATE, sdp=_SDP)


@dataclass
class SippResult:
    """What a SIPp run did. ``returncode``: 0 all calls succeeded, 1 some failed, 97/99/255 other."""

    returncode: int
    successful: int
    failed: int
    output: str
    messages: str  # -trace_msg: every SIP message sent and received
    errors: str  # -trace_err: unexpected messages
    stats: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0

    def logged(self, direction: str, start: str) -> list[str]:
        """The messages SIPp logged as ``"sent"`` or ``"received"`` whose first line starts with
        ``start`` (``"INVITE"``, ``"SIP/2.0 200"``), in order: what crossed the wire, read from
        SIPp's own trace rather than from roomtone."""
        found = []
        for entry in re.split(r"^-{20,} [^\n]*\n", self.messages, flags=re.M):
            head, _, message = entry.partition("\n\n")
            if f" message {direction} " in head and message.startswith(start):
                found.append(message)
        return found

    def report(self) -> str:
        return (f"sipp exit {self.returncode}, successful {self.successful}, failed {self.failed}\n"
                f"--- output tail ---\n{self.output[-2000:]}\n--- errors ---\n{self.errors[-2000:]}\n"
                f"--- messages tail ---\n{self.messages[-3000:]}")


def header(message: str, name: str) -> str:
    """The value of the first ``name`` header of a logged SIP message ("" if none)."""
    match = re.search(rf"^{re.escape(name)}[ \t]*:[ \t]*(.*?)\r?$", message, flags=re.M | re.I)
    return match.group(1) if match else ""


class Sipp:
    """A SIPp process. Use :func:`sipp` (context manager) or :func:`run_sipp` (start and wait)."""

    def __init__(self, scenario_xml: str, remote: str | None = None, *, calls: int = 1,
                 rate: float | None = None, timeout: float = 30.0, service: str = "service",
                 auth: tuple[str, str] | None = None, keys: Mapping[str, str] | None = None,
                 extra: tuple[str, ...] = (), transport: str = "u1") -> None:
        self.port = free_port(span=1)
        self.media_port = free_port(span=4, tcp=False, rtp=True)
        self.dir = tempfile.mkdtemp(prefix="sipp-")
        self.uri = f"sip:{service}@{HOST}:{self.port}"
        path = os.path.join(self.dir, "scenario.xml")
        with open(path, "w") as f:
            f.write(scenario_xml)
        self.msg_file = os.path.join(self.dir, "messages.log")
        self.err_file = os.path.join(self.dir, "errors.log")
        self.stat_file = os.path.join(self.dir, "stats.csv")
        argv = [SIPP]
        if remote:
            argv.append(remote)
        argv += ["-sf", path, "-i", HOST, "-p", str(self.port), "-mi", HOST, "-mp", str(self.media_port),
                 "-m", str(calls), "-t", transport, "-s", service, "-nostdin",
                 "-timeout", f"{int(timeout)}s", "-timeout_error",
                 "-trace_msg", "-message_file", self.msg_file,
                 "-trace_err", "-error_file", self.err_file,
                 "-trace_stat", "-stf", self.stat_file, "-fd", "1"]
        if rate is not None:
            argv += ["-r", str(rate)]
        if auth:
            argv += ["-au", auth[0], "-ap", auth[1]]
        for k, v in (keys or {}).items():
            argv += ["-key", k, v]
        argv += list(extra)
        self.argv = argv
        self.timeout = timeout
        self.proc = ChildProcess(argv, cwd=self.dir, name="sipp")
        if remote is None:
            self._wait_bound()

    def _wait_bound(self, limit: float = 10.0) -> None:
        """A UAS is ready once its SIP port is bound. Read from /proc (a probe bind could steal it)."""
        deadline = time.monotonic() + limit
        table = "/proc/net/tcp" if self.argv[self.argv.index("-t") + 1].startswith("t") else "/proc/net/udp"
        needle = f":{self.port:04X} "
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise PhoneError(f"sipp exited during start{self.proc.tail()}")
            try:
                with open(table) as f:
                    if any(line.split()[1].endswith(needle.strip()) for line in f.readlines()[1:]):
                        return
            except OSError:
                return  # no /proc: fall back to the peers' retransmissions
            time.sleep(0.02)
        raise PhoneError(f"sipp did not bind {HOST}:{self.port} within {limit}s{self.proc.tail()}")

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to finish by itself (its -timeout bounds this) and collect the result."""
        limit = timeout if timeout is not None else self.timeout + 10
        deadline = time.monotonic() + limit
        while self.proc.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._collect(limit)

    async def finished(self, timeout: float | None = None) -> SippResult:
        """:meth:`wait` without blocking the event loop (roomtone in the same loop keeps running)."""
        limit = timeout if timeout is not None else self.timeout + 10
        deadline = time.monotonic() + limit
        while self.proc.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._collect(limit)

    def _collect(self, limit: float) -> SippResult:
        if self.proc.alive():
            self.proc.stop()
            raise PhoneError(f"sipp still running after {limit}s{self.proc.tail()}")
        self.proc.stop()
        return self._result()

    def _result(self) -> SippResult:
        def read(path: str) -> str:
            try:
                with open(path, errors="replace") as f:
                    return f.read()
            except OSError:
                return ""

        stats: dict[str, str] = {}
        try:
            with open(self.stat_file, newline="") as f:
                rows = list(csv.reader(f, delimiter=";"))
            if len(rows) >= 2:
                stats = dict(zip(rows[0], rows[-1], strict=False))
        except OSError:
            pass

        def count(name: str) -> int:
            value = stats.get(name, "0").strip()
            return int(value) if value.isdigit() else 0

        return SippResult(
            returncode=self.proc.proc.returncode if self.proc.proc.returncode is not None else -1,
            successful=count("SuccessfulCall(C)"),
            failed=count("FailedCall(C)"),
            output="\n".join(self.proc.lines),
            messages=read(self.msg_file),
            errors=read(self.err_file),
            stats=stats,
        )

    def close(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def sipp(scenario_xml: str, remote: str | None = None, **kwargs: object) -> Iterator[Sipp]:
    """Start SIPp in the background (e.g. as a UAS: ``sipp(uas_scenario())``, dial ``.uri``)."""
    proc = Sipp(scenario_xml, remote, **kwargs)  # type: ignore[arg-type]
    try:
        yield proc
    finally:
        proc.close()


def run_sipp(scenario_xml: str, remote: str | None = None, **kwargs: object) -> SippResult:
    """Run SIPp to completion and return its result (SIPp's -timeout bounds the wait)."""
    with sipp(scenario_xml, remote, **kwargs) as proc:
        return proc.wait()
