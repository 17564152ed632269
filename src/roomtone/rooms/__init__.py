"""Rooms, participants and data routing: the seam where more than one node plugs in."""
