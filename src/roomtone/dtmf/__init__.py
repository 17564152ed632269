"""DTMF: the digit table, RFC 4733 telephone-event, SIP INFO bodies, tone generation and detection.

Everything here is pure (sans-IO): no sockets, no clocks.
"""

from roomtone.dtmf.detector import detect
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
from roomtone.dtmf.tones import generate

__all__ = [
    "detect",
    "generate",
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
