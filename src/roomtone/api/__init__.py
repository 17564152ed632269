"""HTTP API: twirp RoomService and SIP services answering the official livekit-api clients.

Mount it with :func:`install` (see :mod:`roomtone.api.app`).
"""

from roomtone.api.app import install
from roomtone.api.twirp import TwirpError

__all__ = ["TwirpError", "install"]
