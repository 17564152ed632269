"""SDP (RFC 8866) parsing and serialization, and audio offer/answer (RFC 3264), sans-IO.

Why our own: the Python SDP packages either drop unknown attributes (so a re-serialized
description is not the one received), raise on the first odd line, or know nothing of RFC 3264.
aiortc's SDP code is tied to WebRTC (ICE/DTLS mandatory). A SIP gateway needs plain RTP/AVP audio
with the quirks carriers send, so this module is small and keeps every line it does not interpret.

Parsing: :func:`parse_sdp` returns a :class:`SessionDescription` or an :class:`SdpError` (with the
line number); it never raises. Liberal where RFC 8866 allows it: LF line endings, trailing
whitespace, unknown ``x=`` lines (ignored, as §5 permits), a missing ``t=`` (many PBXs omit it;
we assume ``t=0 0``). Strict on what we rely on: ``v=0`` first, ``o=``/``s=``/``m=`` syntax,
ports and payload types in range.

Offer/answer choices (documented here because they are policy):

* Codecs: PCMU (PT 0), PCMA (8), G.722 (9; its RTP clock is 8000 although it samples at 16 kHz,
  RFC 3551 §4.5.2) and telephone-event. By default the answer picks the first codec **in the
  offerer's order** that we support (RFC 3264 §6.1 says the answerer SHOULD honour the offerer's
  preference); ``AudioCapabilities(prefer="ours")`` picks by our order instead. The answer lists
  only the chosen codec plus telephone-event, so both sides know exactly what will be sent.
* telephone-event is accepted at the chosen codec's RTP clock rate only (8000 for all three
  codecs); the event ranges of the offer's fmtp (default ``0-15`` when absent, RFC 4733 §2.4.1)
  are intersected with ours.
* Several m-lines: the first audio stream we can satisfy is accepted; every other m-line (video,
  a second audio stream, SRTP-only profiles) is answered with port 0, keeping the m-line order.
* Direction: the answer mirrors the offer (sendonly→recvonly, recvonly→sendonly,
  inactive→inactive) intersected with our own wish (e.g. we are holding). ``c=0.0.0.0`` in an
  offer is the RFC 2543 hold: the peer cannot receive, so we do not send.
* Nothing acceptable → :class:`Rejection` with ``status=488`` and a reason naming what was offered.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Literal

from roomtone.numeric import is_ascii_decimal

log = logging.getLogger(__name__)

MAX_SDP = 64 * 1024
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR: dict[str, Direction] = {
    "sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
}
_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"
RTP_PROFILES = ("RTP/AVP", "RTP/AVPF")


@dataclass(frozen=True)
class SdpError:
    """Why a description could not be parsed; ``line`` is 1-based, 0 when not about one line."""

    reason: str
    line: int = 0

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


@dataclass(frozen=True)
class Rejection:
    """An offer (or answer) we cannot satisfy: answer the INVITE with ``status`` and ``reason``."""

    reason: str
    status: int = 488


@dataclass
class Origin:
    username: str = "-"
    session_id: str = "0"
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def serialize(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass
class Connection:
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def serialize(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: an unspecified address means 'do not send to me'."""
        return self.address in ("0.0.0.0", "::")


@dataclass
class Media:
    """One m= section. ``attributes`` keeps every a= line in order as (name, value-or-None)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    key: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """Value of the first attribute ``name`` ('' for a flag), or None when absent."""
        for k, v in self.attributes:
            if k == name:
                return v if v is not None else ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [v or "" for k, v in self.attributes if k == name]

    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """Payload type -> (encoding, clock rate, channels), static types filled in (RFC 3551)."""
        out: dict[int, tuple[str, int, int]] = {}
        for fmt in self.formats:
            if is_ascii_decimal(fmt) and int(fmt) in STATIC_PAYLOAD_TYPES:
                out[int(fmt)] = STATIC_PAYLOAD_TYPES[int(fmt)]
        for value in self.attribute_values("rtpmap"):
            parsed = _parse_rtpmap(value)
            if parsed is not None:
                out[parsed[0]] = parsed[1]
        return out

    def fmtp(self, pt: int) -> str | None:
        for value in self.attribute_values("fmtp"):
            head, _, rest = value.partition(" ")
            if head == str(pt):
                return rest.strip()
        return None

    @property
    def direction(self) -> Direction | None:
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                return k  # type: ignore[return-value]
        return None

    def set_direction(self, direction: Direction) -> None:
        self.attributes = [(k, v) for k, v in self.attributes if k not in DIRECTIONS]
        self.attributes.append((direction, None))

    def serialize_lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        lines = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.connection is not None:
            lines.append(f"c={self.connection.serialize()}")
        lines += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        return lines


@dataclass
class SessionDescription:
    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=lambda: ["0 0"])  # raw t= values
    repeats: list[str] = field(default_factory=list)  # raw r= values
    zone: str | None = None
    key: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)

    def connection_for(self, m: Media) -> Connection | None:
        """The c= that applies to a media section (its own, else the session's)."""
        return m.connection or self.connection

    def direction_for(self, m: Media) -> Direction:
        """Media direction, falling back to the session-level attribute, then sendrecv."""
        if m.direction:
            return m.direction
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                return k  # type: ignore[return-value]
        return "sendrecv"

    def serialize(self) -> str:
        lines = ["v=0", f"o={self.origin.serialize()}", f"s={self.session_name or '-'}"]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines += [f"e={e}" for e in self.emails] + [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection.serialize()}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"t={t}" for t in (self.times or ["0 0"])]
        lines += [f"r={r}" for r in self.repeats]
        if self.zone is not None:
            lines.append(f"z={self.zone}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            lines += m.serialize_lines()
        return "\r\n".join(lines) + "\r\n"

    def __bytes__(self) -> bytes:
        return self.serialize().encode("utf-8")


#: RFC 3551 static payload types we understand: pt -> (encoding, RTP clock, channels).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
}


def _parse_rtpmap(value: str) -> tuple[int, tuple[str, int, int]] | None:
    head, _, rest = value.strip().partition(" ")
    if not is_ascii_decimal(head) or not (0 <= int(head) <= 127):
        return None
    parts = rest.strip().split("/")
    if len(parts) < 2 or not parts[0] or not is_ascii_decimal(parts[1]):
        return None
    channels = 1
    if len(parts) > 2:
        if not is_ascii_decimal(parts[2]):
            return None
        channels = int(parts[2])
    return int(head), (parts[0], int(parts[1]), channels)


def _parse_connection(value: str) -> Connection | None:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        return None
    # multicast TTL/count suffixes stay in the address text; we do unicast only
    return Connection(address=parts[2], nettype=parts[0], addrtype=parts[1])


def parse_sdp(data: str | bytes) -> SessionDescription | SdpError:
    """Parse a session description. Never raises; see the module docstring for what is lenient."""
    try:
        return _parse(data)
    except Exception as exc:  # a bug here must not take a call down; say what happened
        log.exception("SDP parser bug")
        return SdpError(f"internal parser error: {exc!r}")


def _parse(data: str | bytes) -> SessionDescription | SdpError:
    if isinstance(data, bytes):
        if len(data) > MAX_SDP:
            return SdpError(f"description longer than {MAX_SDP} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return SdpError(f"not UTF-8 at byte {exc.start}")
    elif isinstance(data, str):
        text = data
        if len(text) > MAX_SDP:
            return SdpError(f"description longer than {MAX_SDP} characters")
    else:
        return SdpError("description is not text")
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1].strip() == "":
        lines.pop()
    if not lines:
        return SdpError("empty description")
    sd = SessionDescription(times=[])
    seen_o = seen_s = False
    media: Media | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(" \t\r")
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            return SdpError(f"not a type=value line: {line[:40]!r}", number)
        kind, value = line[0], line[2:]
        if number == 1:
            if kind != "v" or value.strip() != "0":
                return SdpError("first line must be v=0", number)
            continue
        if kind == "v":
            return SdpError("repeated v= line", number)
        if kind == "m":
            m = _parse_media_line(value)
            if isinstance(m, str):
                return SdpError(m, number)
            sd.media.append(m)
            media = m
            continue
        if kind == "a":
            name, sep, aval = value.partition(":")
            if not name:
                return SdpError("empty attribute name", number)
            attr = (name, aval if sep else None)
            (media.attributes if media else sd.attributes).append(attr)
            continue
        if kind == "c":
            conn = _parse_connection(value)
            if conn is None:
                return SdpError(f"bad connection line {value!r}", number)
            if media:
                media.connection = conn
            else:
                sd.connection = conn
            continue
        if kind == "b":
            (media.bandwidths if media else sd.bandwidths).append(value)
            continue
        if kind == "i":
            if media:
                media.information = value
            else:
                sd.information = value
            continue
        if kind == "k":
            if media:
                media.key = value
            else:
                sd.key = value
            continue
        if media is not None:
            log.debug("SDP: ignoring %s= line inside a media section", kind)
            continue
        if kind == "o":
            parts = value.split()
            if len(parts) != 6 or not is_ascii_decimal(parts[2]):
                return SdpError(f"bad origin line {value!r}", number)
            sd.origin = Origin(parts[0], parts[1], int(parts[2]), parts[3], parts[4], parts[5])
            seen_o = True
        elif kind == "s":
            sd.session_name = value
            seen_s = True
        elif kind == "u":
            sd.uri = value
        elif kind == "e":
            sd.emails.append(value)
        elif kind == "p":
            sd.phones.append(value)
        elif kind == "t":
            sd.times.append(value)
        elif kind == "r":
            sd.repeats.append(value)
        elif kind == "z":
            sd.zone = value
        else:
            log.debug("SDP: ignoring unknown line type %r", kind)
    if not seen_o:
        return SdpError("missing o= line")
    if not seen_s:
        return SdpError("missing s= line")
    if not sd.times:
        sd.times = ["0 0"]
    return sd


def _parse_media_line(value: str) -> Media | str:
    parts = value.split()
    if len(parts) < 3:
        return f"bad media line {value!r}"
    port_text, _, count_text = parts[1].partition("/")
    if not is_ascii_decimal(port_text) or int(port_text) > 65535:
        return f"bad media port {parts[1]!r}"
    count = None
    if count_text:
        if not is_ascii_decimal(count_text) or int(count_text) < 1:
            return f"bad media port count {parts[1]!r}"
        count = int(count_text)
    formats = parts[3:]
    if parts[2] in RTP_PROFILES or parts[2].startswith("RTP/"):
        for fmt in formats:
            if not is_ascii_decimal(fmt) or int(fmt) > 127:
                return f"bad RTP payload type {fmt!r}"
    return Media(media=parts[0], port=int(port_text), proto=parts[2], formats=formats, port_count=count)


# --------------------------------------------------------------------------- offer/answer


@dataclass(frozen=True)
class Codec:
    """An audio codec as RTP names it. ``rtp_clock`` is what goes in rtpmap and RTP timestamps."""

    name: str
    rtp_clock: int
    static_pt: int | None = None
    channels: int = 1

    def rtpmap(self, pt: int) -> str:
        return f"{pt} {self.name}/{self.rtp_clock}"


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
G722 = Codec("G722", 8000, 9)  # samples at 16 kHz, RTP clock 8000 (RFC 3551 §4.5.2)
CODECS: dict[str, Codec] = {c.name: c for c in (PCMU, PCMA, G722)}
TELEPHONE_EVENT_RATES = (8000, 16000, 48000)
#: dynamic payload types we offer telephone-event on, per clock rate
TELEPHONE_EVENT_PTS = {8000: 101, 16000: 102, 48000: 103}


def parse_event_ranges(text: str | None) -> frozenset[int] | None:
    """``"0-15,66"`` -> event codes; None when malformed. Absent fmtp means 0-15 (RFC 4733 §2.4.1)."""
    if text is None or not text.strip():
        return frozenset(range(16))
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        if not is_ascii_decimal(lo) or (sep and not is_ascii_decimal(hi)):
            return None
        a, b = int(lo), int(hi) if sep else int(lo)
        if a > b or b > 255:
            return None
        out.update(range(a, b + 1))
    return frozenset(out)


def format_event_ranges(events: frozenset[int] | set[int]) -> str:
    """Event codes -> compact fmtp text, e.g. ``{0..15, 16}`` -> ``"0-16"``."""
    parts: list[str] = []
    run: list[int] = []
    for code in sorted(events):
        if run and code == run[-1] + 1:
            run.append(code)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [code]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


@dataclass(frozen=True)
class AudioCapabilities:
    """What we can do. ``codecs`` in our preference order (names from :data:`CODECS`)."""

    codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722")
    telephone_event: bool = True
    events: frozenset[int] = frozenset(range(17))  # 0-15 plus flash (16)
    ptime: int | None = 20
    prefer: Literal["offerer", "ours"] = "offerer"


@dataclass(frozen=True)
class NegotiatedAudio:
    """The agreed audio stream: what to send, where, and what we expect to receive."""

    media_index: int
    remote_address: str
    remote_port: int
    codec: Codec
    payload_type: int
    telephone_event_pt: int | None
    telephone_events: frozenset[int]
    ptime: int  # what the peer wants to receive (its a=ptime, else 20)
    direction: Direction  # OUR direction: may we send, do we expect to receive
    remote_rtcp_port: int | None = None  # a=rtcp (RFC 3605), else RTP port + 1; None if port 0

    @property
    def on_hold(self) -> bool:
        """True when we must not send audio (the peer held us, or we hold them)."""
        return self.direction in ("recvonly", "inactive")

    @property
    def can_send(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def can_receive(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


@dataclass(frozen=True)
class Answer:
    sdp: SessionDescription
    audio: NegotiatedAudio


def _intersect(ours: Direction, theirs_mirrored: Direction) -> Direction:
    send = ours in ("sendrecv", "sendonly") and theirs_mirrored in ("sendrecv", "sendonly")
    recv = ours in ("sendrecv", "recvonly") and theirs_mirrored in ("sendrecv", "recvonly")
    return "sendrecv" if send and recv else "sendonly" if send else "recvonly" if recv else "inactive"


def _remote_ptime(sd: SessionDescription, m: Media) -> int:
    value = m.attribute("ptime")
    if value is None:
        value = next((v for k, v in sd.attributes if k == "ptime" and v), None)
    if value and is_ascii_decimal(value.strip().split(".")[0]):
        p = int(value.strip().split(".")[0])
        if 10 <= p <= 200:
            return p
    return 20


def _rtcp_port(m: Media) -> int | None:
    """Where the peer wants RTCP: a=rtcp-mux means the RTP port, a=rtcp:PORT (RFC 3605), else port+1."""
    if m.port == 0:
        return None
    if m.attribute("rtcp-mux") is not None:
        return m.port
    value = m.attribute("rtcp")
    if value:
        head = value.split()[0]
        if is_ascii_decimal(head) and 0 < int(head) <= 65535:
            return int(head)
    return m.port + 1 if m.port < 65535 else None


def _describe(m: Media) -> str:
    maps = m.rtpmap()
    names = []
    for fmt in m.formats:
        info = maps.get(int(fmt)) if is_ascii_decimal(fmt) else None
        names.append(f"{info[0]}/{info[1]}" if info else f"pt {fmt}")
    return ", ".join(names) or "no formats"


def _local_media(caps: AudioCapabilities, port: int, codecs: list[tuple[int, Codec]],
                 te: list[tuple[int, int, frozenset[int]]], direction: Direction, proto: str) -> Media:
    m = Media("audio", port, proto, [str(pt) for pt, _ in codecs] + [str(pt) for pt, _, _ in te])
    for pt, codec in codecs:
        m.attributes.append(("rtpmap", codec.rtpmap(pt)))
    for pt, rate, events in te:
        m.attributes.append(("rtpmap", f"{pt} telephone-event/{rate}"))
        m.attributes.append(("fmtp", f"{pt} {format_event_ranges(events)}"))
    if caps.ptime:
        m.attributes.append(("ptime", str(caps.ptime)))
    m.attributes.append((direction, None))
    return m


def build_offer(
    address: str,
    port: int,
    caps: AudioCapabilities = AudioCapabilities(),
    *,
    direction: Direction = "sendrecv",
    session_id: str | None = None,
    session_version: int = 1,
    legacy_hold: bool = False,
) -> SessionDescription:
    """An offer with one audio stream listing our codecs and telephone-event/8000.

    ``legacy_hold`` writes ``c=0.0.0.0`` (RFC 2543 hold) for peers that predate a=sendonly.
    """
    addrtype = "IP6" if ":" in address else "IP4"
    codecs = [(CODECS[name].static_pt or 0, CODECS[name]) for name in caps.codecs if name in CODECS]
    te = [(TELEPHONE_EVENT_PTS[8000], 8000, caps.events)] if caps.telephone_event else []
    conn_addr = ("0.0.0.0" if addrtype == "IP4" else "::") if legacy_hold else address
    return SessionDescription(
        origin=Origin("roomtone", session_id or str(secrets.randbelow(2**62)), session_version,
                      "IN", addrtype, address),
        session_name="roomtone",
        connection=Connection(conn_addr, "IN", addrtype),
        media=[_local_media(caps, port, codecs, te, direction, "RTP/AVP")],
    )


def _usable_audio(sd: SessionDescription, m: Media) -> bool:
    return m.media == "audio" and m.port != 0 and m.proto in RTP_PROFILES


def build_answer(
    offer: SessionDescription,
    address: str,
    port: int,
    caps: AudioCapabilities = AudioCapabilities(),
    *,
    direction: Direction = "sendrecv",
    session_id: str | None = None,
    session_version: int = 1,
) -> Answer | Rejection:
    """Answer a remote offer (see the module docstring for the policy), or a 488 :class:`Rejection`."""
    chosen: tuple[int, Media, tuple[int, Codec], tuple[int, frozenset[int]] | None] | None = None
    problems: list[str] = []
    for index, m in enumerate(offer.media):
        if chosen is not None or not _usable_audio(offer, m):
            continue
        if offer.connection_for(m) is None:
            problems.append(f"m-line {index + 1} has no connection address")
            continue
        maps = m.rtpmap()
        ours = {name.upper(): CODECS[name] for name in caps.codecs if name in CODECS}
        offered: list[tuple[int, Codec]] = []
        for fmt in m.formats:
            info = maps.get(int(fmt))
            if info and info[0].upper() in ours and info[1] == ours[info[0].upper()].rtp_clock and info[2] == 1:
                offered.append((int(fmt), ours[info[0].upper()]))
        if not offered:
            problems.append(f"no common audio codec in m-line {index + 1} (offered {_describe(m)}; "
                            f"we support {', '.join(caps.codecs)})")
            continue
        if caps.prefer == "ours":
            rank = {name.upper(): i for i, name in enumerate(caps.codecs)}
            offered.sort(key=lambda item: rank[item[1].name.upper()])
        pick = offered[0]
        te: tuple[int, frozenset[int]] | None = None
        if caps.telephone_event:
            for fmt in m.formats:
                info = maps.get(int(fmt))
                if info and info[0].lower() == "telephone-event" and info[1] == pick[1].rtp_clock:
                    events = parse_event_ranges(m.fmtp(int(fmt)))
                    if events is None:
                        log.info("SDP offer: unparsable telephone-event fmtp %r", m.fmtp(int(fmt)))
                        continue
                    common = events & caps.events
                    if common:
                        te = (int(fmt), frozenset(common))
                        break
        chosen = (index, m, pick, te)
    if chosen is None:
        if not any(m.media == "audio" for m in offer.media):
            problems.insert(0, "offer has no audio stream")
        elif not problems:
            problems.append("no usable audio stream (all rejected or not RTP/AVP)")
        return Rejection("; ".join(problems))

    index, offered_m, (pt, codec), te = chosen
    conn = offer.connection_for(offered_m)
    assert conn is not None
    remote_dir = offer.direction_for(offered_m)
    if conn.is_hold and remote_dir in ("sendrecv", "recvonly"):
        remote_dir = "sendonly" if remote_dir == "sendrecv" else "inactive"
    answer_dir = _intersect(direction, _MIRROR[remote_dir])
    addrtype = "IP6" if ":" in address else "IP4"
    answer = SessionDescription(
        origin=Origin("roomtone", session_id or str(secrets.randbelow(2**62)), session_version,
                      "IN", addrtype, address),
        session_name="roomtone",
        connection=Connection(address, "IN", addrtype),
        times=list(offer.times[:1]) or ["0 0"],
    )
    for i, m in enumerate(offer.media):
        if i == index:
            te_list = [(te[0], codec.rtp_clock, te[1])] if te else []
            answer.media.append(_local_media(caps, port, [(pt, codec)], te_list, answer_dir, m.proto))
        else:
            answer.media.append(Media(m.media, 0, m.proto, list(m.formats) or ["0"]))
    negotiated = NegotiatedAudio(
        media_index=index,
        remote_address=conn.address,
        remote_port=offered_m.port,
        codec=codec,
        payload_type=pt,
        telephone_event_pt=te[0] if te else None,
        telephone_events=te[1] if te else frozenset(),
        ptime=_remote_ptime(offer, offered_m),
        direction=answer_dir,
        remote_rtcp_port=_rtcp_port(offered_m),
    )
    return Answer(answer, negotiated)


def parse_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedAudio | Rejection:
    """Check a remote answer against the offer we sent and say what was agreed."""
    if len(answer.media) != len(offer.media):
        return Rejection(f"answer has {len(answer.media)} m-lines for {len(offer.media)} offered")
    for index, (om, am) in enumerate(zip(offer.media, answer.media, strict=True)):
        if om.media != "audio" or om.port == 0:
            continue
        if am.media != "audio":
            return Rejection(f"answer m-line {index + 1} is {am.media!r}, offered audio")
        if am.port == 0:
            continue
        if am.proto != om.proto or not all(is_ascii_decimal(f) for f in am.formats):
            return Rejection(f"answer m-line {index + 1} changed the profile to {am.proto!r}")
        conn = answer.connection_for(am)
        if conn is None:
            return Rejection(f"answer m-line {index + 1} has no connection address")
        ours = om.rtpmap()
        theirs = am.rtpmap()
        codec: tuple[int, Codec] | None = None
        te_pt: int | None = None
        events: frozenset[int] = frozenset()
        for fmt in am.formats:
            pt = int(fmt)
            info = theirs.get(pt) or ours.get(pt)
            if info is None:
                continue
            if info[0].lower() == "telephone-event":
                if te_pt is None:
                    got = parse_event_ranges(am.fmtp(pt))
                    te_pt, events = pt, (got if got is not None else frozenset(range(16)))
                continue
            if codec is None and info[0].upper() in CODECS and pt in ours:
                candidate = CODECS[info[0].upper()]
                if candidate.rtp_clock == info[1]:
                    codec = (pt, candidate)
        if codec is None:
            return Rejection(f"answer m-line {index + 1} has no codec we offered ({_describe(am)})")
        te_ok = te_pt is not None and te_pt in ours and theirs.get(te_pt, ours[te_pt])[1] == codec[1].rtp_clock
        remote_dir = answer.direction_for(am)
        if conn.is_hold and remote_dir in ("sendrecv", "recvonly"):
            remote_dir = "sendonly" if remote_dir == "sendrecv" else "inactive"
        our_offer_dir = offer.direction_for(om)
        ours_events = parse_event_ranges(om.fmtp(te_pt)) if te_ok and te_pt is not None else None
        return NegotiatedAudio(
            media_index=index,
            remote_address=conn.address,
            remote_port=am.port,
            codec=codec[1],
            payload_type=codec[0],
            telephone_event_pt=te_pt if te_ok else None,
            telephone_events=(events & ours_events) if te_ok and ours_events is not None else frozenset(),
            ptime=_remote_ptime(answer, am),
            direction=_intersect(our_offer_dir, _MIRROR[remote_dir]),
            remote_rtcp_port=_rtcp_port(am),
        )
    return Rejection("answer rejected every audio stream")


def is_hold(sd: SessionDescription) -> bool:
    """Whether a (re-)offer puts us on hold: sendonly/inactive, or the legacy c=0.0.0.0."""
    for m in sd.media:
        if m.media == "audio" and m.port != 0:
            conn = sd.connection_for(m)
            if (conn is not None and conn.is_hold) or sd.direction_for(m) in ("sendonly", "inactive"):
                return True
            return False
    return False


@dataclass
class SdpSession:
    """Our side of one call's SDP: keeps o= session id and version across offers and answers.

    RFC 3264 §8: every new offer or answer in a dialog carries the same session id and a version
    one higher than before; a re-sent unchanged description keeps its version.
    """

    address: str
    port: int
    caps: AudioCapabilities = field(default_factory=AudioCapabilities)
    session_id: str = field(default_factory=lambda: str(secrets.randbelow(2**62)))
    version: int = 0
    last_offer: SessionDescription | None = None
    negotiated: NegotiatedAudio | None = None

    def offer(self, direction: Direction = "sendrecv", legacy_hold: bool = False) -> SessionDescription:
        self.version += 1
        self.last_offer = build_offer(self.address, self.port, self.caps, direction=direction,
                                      session_id=self.session_id, session_version=self.version,
                                      legacy_hold=legacy_hold)
        return self.last_offer

    def hold(self, legacy: bool = False) -> SessionDescription:
        """A re-INVITE offer putting the peer on hold (a=sendonly, or c=0.0.0.0 if ``legacy``)."""
        return self.offer("sendonly", legacy_hold=legacy)

    def unhold(self) -> SessionDescription:
        return self.offer("sendrecv")

    def answer(self, remote_offer: SessionDescription, direction: Direction = "sendrecv") -> Answer | Rejection:
        result = build_answer(remote_offer, self.address, self.port, self.caps, direction=direction,
                              session_id=self.session_id, session_version=self.version + 1)
        if isinstance(result, Answer):
            self.version += 1
            self.negotiated = result.audio
        return result

    def receive_answer(self, remote_answer: SessionDescription) -> NegotiatedAudio | Rejection:
        if self.last_offer is None:
            return Rejection("answer received but no offer was sent", status=400)
        result = parse_answer(self.last_offer, remote_answer)
        if isinstance(result, NegotiatedAudio):
            self.negotiated = result
        return result


__all__ = [
    "AudioCapabilities", "Answer", "Codec", "CODECS", "Connection", "Direction", "G722", "Media",
    "NegotiatedAudio", "Origin", "PCMA", "PCMU", "Rejection", "SdpError", "SdpSession",
    "SessionDescription", "build_answer", "build_offer", "format_event_ranges", "is_hold",
    "parse_answer", "parse_event_ranges", "parse_sdp",
]
