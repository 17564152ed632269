"""The namespace helper itself: veth addresses up inside, gone afterwards, processes ended."""

import subprocess
import sys

from tests.netns import ADDRESSES, Netns, netns  # noqa: F401


def test_namespace_has_veth_addresses_and_is_removed(netns):  # noqa: F811
    out = netns.run(["ip", "-4", "-o", "addr"], check=True).stdout
    for addr in ADDRESSES:
        assert addr in out
    # The two veth ends reach each other over UDP (what ICE needs).
    code = (
        "import socket; a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(('{}', 0));"
        "b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(('{}', 0)); b.settimeout(2);"
        "a.sendto(b'x', b.getsockname()); print(b.recvfrom(10)[1][0])"
    ).format(*ADDRESSES)
    udp = netns.run([sys.executable, "-c", code], check=True)
    assert udp.stdout.strip() == ADDRESSES[0]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert netns.name in listed


def test_close_ends_processes_and_deletes_namespace():
    ns = Netns().create()
    p = ns.popen(["sleep", "60"])
    ns.close()
    assert p.poll() is not None
    assert ns.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
