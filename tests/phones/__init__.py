"""Real SIP phones for tests: baresip, pjsua2 and SIPp, each on free loopback ports, stopped by PID.

Every harness is a context manager that starts its process, waits until it is ready, and on exit
stops it (SIGTERM, then SIGKILL, to the process group it created) and removes its temp directory.
Failures raise :class:`PhoneError` (an AssertionError) whose message ends with the phone's log tail.
Ports come from 21000-21499 (SIP, control) and 21500-21999 (RTP), checked free before use.
Mark tests that use them ``@pytest.mark.interop``. A call takes about a second to set up here.

baresip (``tests.phones.baresip``)::

    with baresip_phone(user="alice", codecs=("PCMU",), auto_answer=False,
                       auth=("alice", "pw"), record=False) as b:
        b.uri                      # "sip:alice@127.0.0.1:<port>"
        b.dial("sip:bob@127.0.0.1:5070")
        b.wait_event("CALL_ESTABLISHED")       # ctrl_tcp event dicts: type, param, id, peeruri...
        b.answer()                 # waits for CALL_INCOMING, then accepts
        b.send_dtmf("123#")        # RFC 4733 (the only method baresip 1.0 sends), ~180 ms events
        b.play_file("tones.wav")   # switch the audio source to a WAV file: in-band tones, prompts
        b.wait_digits(4)           # [{"digit", "method": "rfc4733"|"info", "duration_ms"?}]
        b.recordings()             # with record=True: WAVs of the decoded audio it received
        b.hangup(); b.command("hold"); b.command(<any baresip long command>, params)

pjsua2 (``tests.phones.pjsua``; the phone runs in tests/phones/pjsua_agent.py)::

    with pjsua_phone(user="bob", codecs=("PCMU", "PCMA", "G722"), auto_answer=True,
                     auth=("bob", "pw"), tcp=False) as p:
        p.uri
        call_id = p.call("sip:...")            # then p.wait_state("CONFIRMED")
        p.answer(code=200)                     # waits for "incoming" (event has the offer "sdp")
        p.send_dtmf("12", method="rfc4733"|"info"|"inband", duration_ms=160)
        p.play("prompt.wav"); p.record("/tmp/rx.wav")    # audio into / out of the call
        p.command("hold"); p.command("unhold")
        p.wait_digits(2)       # [{"digit", "method": "rfc4733"|"info", "call"}], one per digit
        p.wait_event("dtmf_event", end=True)  # RFC 4733 start/update/end with duration_ms; INFO once
        p.wait_event("media", active=True); p.hangup(); p.wait_state("DISCONNECTED")

SIPp (``tests.phones.sipp``)::

    result = run_sipp(uac_scenario(info_dtmf="12#", pcap=None, hold_ms=500, auth_code=None),
                      "127.0.0.1:5060", calls=1, rate=None, auth=("u", "pw"), timeout=30)
    assert result.ok, result.report()       # returncode, successful, failed, messages, errors, stats
    with sipp(uas_scenario(), timeout=20) as s:       # background UAS; dial s.uri
        ...; result = s.wait()
    render(my_template_xml, name=value)      # {{name}} placeholders for your own scenarios

Raw loopback responder (``tests.phones.raw``): ``RawUas(policy)`` answers each request with
``policy(msg) -> [bytes]`` (``response(req, code, reason, ...)`` builds replies) and keeps every
message in ``.received``; for capturing what a phone sends and for testing pieces without a UA.

DTMF each phone can send and receive, measured by tests/phones/test_interop.py:

=========  ===========================  ==========================================
phone      sends                        receives (reported with method)
=========  ===========================  ==========================================
baresip    RFC 4733; in-band via a WAV  RFC 4733, SIP INFO (dtmf-relay); no in-band
pjsua2     RFC 4733, SIP INFO, in-band  RFC 4733, SIP INFO; no in-band (record it)
SIPp       SIP INFO; pcap (RFC 4733 or  nothing decoded: its message log shows INFO
           in-band) via play_pcap_audio
=========  ===========================  ==========================================
"""

from .common import HOST, PhoneError, free_port

__all__ = ["HOST", "PhoneError", "free_port"]
