"""SIP participants in rooms: trunks, dispatch rules, outbound calls, DTMF relay."""
