"""Checks for numbers in text that arrives from the network.

``str.isdigit()`` is true for characters ``int()`` refuses (superscripts such as ``"²"``) and for
non-ASCII decimal digits (``"٣"``) that no SIP, SDP or INFO grammar allows, so parsers of untrusted
input use :func:`is_ascii_decimal` instead: one place for that rule.
"""

from __future__ import annotations


def is_ascii_decimal(text: str) -> bool:
    """True when ``text`` is one or more ASCII digits 0-9 (so ``int(text)`` cannot fail)."""
    return text.isascii() and text.isdigit()
