"""Identifiers in LiveKit's style: a type prefix and 12 random base-62 characters.

``ST_`` trunks, ``SDR_`` dispatch rules, ``SCL_`` SIP calls (livekit/protocol ``utils/guid``).
"""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.digits + string.ascii_letters

TRUNK_PREFIX = "ST_"
RULE_PREFIX = "SDR_"
CALL_PREFIX = "SCL_"


def random_suffix(length: int = 12) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    return prefix + random_suffix()
