"""Errors the telephony layer reports to the API, each carrying the twirp code it maps to.

The code strings are twirp's (``not_found``, ``invalid_argument``, ``failed_precondition`` ...)
so the API layer can answer without a translation table, while this layer stays free of HTTP.
``meta`` carries SIP details (``sip_status_code``, ``sip_status``) the way livekit-api reads them.
"""

from __future__ import annotations


class TelephonyError(Exception):
    def __init__(self, code: str, message: str, meta: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.meta = dict(meta or {})
