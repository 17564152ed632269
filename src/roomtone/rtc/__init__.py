"""LiveKit-compatible signalling, tokens and grants, WebRTC transports (aiortc).

* :mod:`.tokens`: HS256 access tokens (pyjwt) and their grants.
* :mod:`.auth`: authorising a join, with LiveKit's HTTP statuses and messages.
* :mod:`.signal`: ``/rtc`` (v0, publisher + subscriber PCs) and ``/rtc/v1`` (one PC) over aiohttp
  WebSockets; each connection is a room endpoint (:mod:`roomtone.rooms`).
* :mod:`.peer`: one aiortc PeerConnection (negotiation lock, trickle, data channels).
* :mod:`.ice`: host addresses, UDP port range and STUN for aiortc (process-wide, see there why).
* :mod:`.media`: relaying audio tracks between participants (aiortc ``MediaRelay``).

The wire facts these follow are in shared/reference/livekit-signal-protocol.md.
"""
