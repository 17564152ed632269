"""DTMF: the digit table, RFC 4733 telephone-event, SIP INFO bodies, tone generation and detection.

Everything here is pure (sans-IO): no sockets, no clocks.
"""

from roomtone.dtmf.digits import (
    CANONICAL,
    FLASH,
    PAUSES,
    DtmfError,
    Pause,
    Step,
    Tone,
    canonical,
    code_for,
    digit_for,
    interpret_sip_dtmf,
    parse_sequence,
)

__all__ = [
    "CANONICAL",
    "FLASH",
    "PAUSES",
    "DtmfError",
    "Pause",
    "Step",
    "Tone",
    "canonical",
    "code_for",
    "digit_for",
    "interpret_sip_dtmf",
    "parse_sequence",
]
