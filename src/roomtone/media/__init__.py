"""Media: RTP/RTCP, G.711 and other codecs, jitter handling, per-call media sessions."""
