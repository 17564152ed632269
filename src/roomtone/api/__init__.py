"""HTTP API: twirp RoomService and SIP services answering the official livekit-api clients."""
