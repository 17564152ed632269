"""LiveKit-compatible signalling, tokens and grants, WebRTC transports (aiortc)."""
