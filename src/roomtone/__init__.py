"""roomtone: an open telephony-and-rooms server, wire-compatible with LiveKit, with DTMF done right."""

__version__ = "0.1.0"
