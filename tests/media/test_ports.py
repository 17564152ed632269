"""RTP port allocation: even ports, RTCP above, skipping ports other programs hold."""

from __future__ import annotations

import socket

import pytest

from roomtone.media.ports import PortAllocator, PortRangeExhausted, bind_rtp_pair


def test_allocates_even_ports_round_robin_and_reuses_late():
    alloc = PortAllocator(22001, 22009)
    got = [alloc.allocate() for _ in range(4)]
    assert got == [22002, 22004, 22006, 22008]
    with pytest.raises(PortRangeExhausted):
        alloc.allocate()
    alloc.release(22004)
    assert alloc.allocate() == 22004


def test_released_port_is_not_handed_out_again_at_once():
    alloc = PortAllocator(22010, 22019)
    a = alloc.allocate()
    alloc.release(a)
    assert alloc.allocate() != a


def test_bind_skips_ports_held_by_someone_else():
    alloc = PortAllocator(22020, 22029)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 22021))  # the RTCP port of the first pair
    try:
        rtp, rtcp, port = bind_rtp_pair(alloc, "127.0.0.1")
        try:
            assert port == 22022
            assert rtp.getsockname()[1] == 22022 and rtcp.getsockname()[1] == 22023
        finally:
            rtp.close()
            rtcp.close()
    finally:
        blocker.close()


def test_bind_gives_a_clear_error_when_the_range_is_full():
    alloc = PortAllocator(22030, 22031)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 22030))
    try:
        with pytest.raises(PortRangeExhausted, match="22030-22031"):
            bind_rtp_pair(alloc, "127.0.0.1")
    finally:
        blocker.close()


def test_bad_range():
    with pytest.raises(ValueError):
        PortAllocator(22041, 22041)
