"""baresip (Debian ``baresip-core`` 1.0.0) as a test phone, driven over its ctrl_tcp interface.

Measured on this version (see tests/phones/test_interop.py):

* sends DTMF by RFC 4733 only (``sndcode``; no SIP INFO sender in 1.0.0); it can send in-band tones
  by playing a WAV file as its audio source (:meth:`Baresip.play_file`);
* receives RFC 4733 and SIP INFO (``application/dtmf-relay``); the method is read from its log
  line ("received event" = RFC 4733, "received DTMF" = INFO); no in-band detector, but
  ``record=True`` saves the decoded received audio (sndfile module) for the test to analyse.

Audio needs no sound card: the source is ``ausine`` (a 440 Hz sine) or a file, the player is an
``aubridge`` device nobody reads (a null sink).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from .common import HOST, RTP_RANGE, ChildProcess, EventLog, PhoneError, free_port

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
RTP_PORTS = f"{RTP_RANGE[0]}-{RTP_RANGE[1]}"

_RX_RFC4733 = re.compile(r"received event: '(.)' \(end=(\d)\)")
_RX_INFO = re.compile(r"call: received DTMF: '(.)' \(duration=(\d+)\)")


#: baresip names codecs by name/sample rate/channels; G.722 samples at 16 kHz.
_BARESIP_CODEC = {"PCMU": "PCMU/8000/1", "PCMA": "PCMA/8000/1", "G722": "G722/16000/1"}


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """One running baresip. Use :func:`baresip_phone` (context manager) to get one.

    ``events`` holds ctrl_tcp events (dicts with ``type``: CALL_INCOMING, CALL_ESTABLISHED,
    CALL_CLOSED, CALL_DTMF_START, ...). ``dtmf`` holds received digits as
    ``{"digit", "method": "rfc4733"|"info", "duration_ms"}`` read from the log.
    """

    def __init__(self, *, user: str = "baresip", codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722"),
                 auto_answer: bool = False, auth: tuple[str, str] | None = None,
                 record: bool = False, workdir: str | None = None) -> None:
        self.user = user
        self.port = free_port(span=3)  # SIP UDP/TCP on port, TLS on port+1, ctrl_tcp on port+2
        self.ctrl_port = self.port + 2
        self.dir = workdir or tempfile.mkdtemp(prefix="baresip-")
        self.uri = f"sip:{user}@{HOST}:{self.port}"
        self.events = EventLog()
        self.dtmf = EventLog()
        self.record_dir = os.path.join(self.dir, "rec") if record else None
        self._write_config(codecs, auto_answer, auth)
        self._token = 0
        self._responses: dict[str, dict[str, Any]] = {}
        self._resp_cond = threading.Condition()
        self._sock: socket.socket | None = None
        self.proc = ChildProcess(["stdbuf", "-oL", "-eL", BARESIP, "-f", self.dir],
                                 cwd=self.dir, on_line=self._on_line, name="baresip")
        self._connect()

    # ------------------------------------------------------------------ setup

    def _write_config(self, codecs: tuple[str, ...], auto_answer: bool, auth: tuple[str, str] | None) -> None:
        modules = ["g711.so", "g722.so", "ausine.so", "aufile.so", "aubridge.so", "ctrl_tcp.so"]
        if self.record_dir:
            os.makedirs(self.record_dir, exist_ok=True)
            modules.append("sndfile.so")
        lines = [
            "poll_method epoll",
            f"sip_listen {HOST}:{self.port}",
            f"net_interface {HOST}",
            "audio_player aubridge,nullsink",
            "audio_alert aubridge,nullsink",
            "audio_source ausine,440",
            "ausrc_srate 48000",
            "ausrc_channels 2",
            f"rtp_ports {RTP_PORTS}",
            "module_path /usr/lib/baresip/modules",
            *[f"module {m}" for m in modules],
            "module_app account.so",
            "module_app menu.so",
            f"ctrl_tcp_listen {HOST}:{self.ctrl_port}",
            "call_local_timeout 60",
        ]
        if self.record_dir:
            lines.append(f"snd_path {self.record_dir}")
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("\n".join(lines) + "\n")
        params = ["regint=0", f"answermode={'auto' if auto_answer else 'manual'}",
                  f"audio_codecs={','.join(_BARESIP_CODEC.get(c.upper(), c) for c in codecs)}"]
        addr = f"<sip:{self.user}@{HOST}:{self.port}"
        if auth:
            addr = f"<sip:{auth[0]}@{HOST}:{self.port}"
            params.append(f"auth_pass={auth[1]}")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f"{addr}>;{';'.join(params)}\n")
        open(os.path.join(self.dir, "contacts"), "w").close()

    def _connect(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise PhoneError(f"baresip exited during start{self.proc.tail()}")
            try:
                self._sock = socket.create_connection((HOST, self.ctrl_port), timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise PhoneError(f"baresip ctrl_tcp did not open on {self.ctrl_port}{self.proc.tail()}")
        self._sock.settimeout(None)
        threading.Thread(target=self._read_ctrl, name="baresip-ctrl", daemon=True).start()
        # 'baresip is ready.' follows module loading; the ctrl socket is up by then, but the UA may not be
        deadline = time.monotonic() + 10
        while not any("baresip is ready" in line for line in list(self.proc.lines)):
            if time.monotonic() > deadline or not self.proc.alive():
                raise PhoneError(f"baresip did not become ready{self.proc.tail()}")
            time.sleep(0.05)

    def _read_ctrl(self) -> None:
        assert self._sock is not None
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0 or not buf[:colon].isdigit():
                    break
                size = int(buf[:colon])
                if len(buf) < colon + 1 + size + 1:
                    break
                payload = buf[colon + 1:colon + 1 + size]
                buf = buf[colon + 2 + size:]
                try:
                    msg = json.loads(payload)
                except ValueError:
                    self.proc.lines.append(f"[harness: bad ctrl_tcp JSON {payload[:80]!r}]")
                    continue
                if msg.get("response"):
                    with self._resp_cond:
                        self._responses[str(msg.get("token"))] = msg
                        self._resp_cond.notify_all()
                elif msg.get("event"):
                    msg["at"] = time.monotonic()
                    self.events.add(msg)

    def _on_line(self, line: str) -> None:
        m = _RX_RFC4733.search(line)
        if m and m.group(2) == "0":
            self.dtmf.add({"digit": m.group(1), "method": "rfc4733", "at": time.monotonic()})
            return
        m = _RX_INFO.search(line)
        if m:
            self.dtmf.add({"digit": m.group(1), "method": "info", "duration_ms": int(m.group(2)),
                           "at": time.monotonic()})

    # ------------------------------------------------------------------ commands

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Run a baresip long command (menu module), return its response dict."""
        if self._sock is None:
            raise PhoneError("baresip control socket is not connected")
        self._token += 1
        token = str(self._token)
        payload = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(_netstring(payload))
        deadline = time.monotonic() + timeout
        with self._resp_cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PhoneError(f"baresip did not answer {command!r}{self.proc.tail()}")
                self._resp_cond.wait(left)
            resp = self._responses.pop(token)
        if not resp.get("ok"):
            raise PhoneError(f"baresip refused {command} {params!r}: {resp.get('data')!r}{self.proc.tail()}")
        return resp

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def answer(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for an incoming call, accept it; returns the CALL_INCOMING event."""
        ev = self.wait_event("CALL_INCOMING", timeout)
        self.command("accept")
        return ev

    def hangup(self) -> None:
        self.command("hangup")

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        """RFC 4733 events, one ``sndcode`` per digit (start, then release) with ``gap`` s between."""
        for d in digits:
            self.command("sndcode", d)
            time.sleep(gap)

    def play_file(self, wav_path: str) -> None:
        """Switch the audio source to a WAV file (8 or 16 kHz mono): in-band tones, prompts, speech."""
        self.command("ausrc", f"aufile,{wav_path}")

    def recordings(self) -> list[str]:
        """WAV files of decoded audio (needs ``record=True``); baresip writes one per direction."""
        if not self.record_dir:
            raise PhoneError("start the phone with record=True to record audio")
        return sorted(glob.glob(os.path.join(self.record_dir, "*.wav")))

    # ------------------------------------------------------------------ waiting

    def wait_event(self, type_: str, timeout: float = 10.0, start: int = 0) -> dict[str, Any]:
        ev = self.events.wait(lambda e: e.get("type") == type_, timeout, start)
        if ev is None:
            seen = [e.get("type") for e in self.events.snapshot()]
            raise PhoneError(f"baresip: no {type_} within {timeout}s (events: {seen}){self.proc.tail()}")
        return ev

    def wait_digits(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        if not self.dtmf.wait_count(count, timeout):
            got = "".join(d["digit"] for d in self.dtmf.snapshot())
            raise PhoneError(f"baresip received {got!r}, expected {count} digits{self.proc.tail()}")
        return self.dtmf.snapshot()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self.proc.stop()


@contextlib.contextmanager
def baresip_phone(**kwargs: Any) -> Iterator[Baresip]:
    """Start baresip on free loopback ports; stop it (by PID) and remove its directory afterwards.

    Keyword arguments: ``user``, ``codecs``, ``auto_answer``, ``auth=(user, password)``, ``record``.
    """
    phone = Baresip(**kwargs)
    try:
        yield phone
    finally:
        phone.close()
        shutil.rmtree(phone.dir, ignore_errors=True)
