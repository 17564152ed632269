"""roomtone server + twirp API + SIP gateway in one process, for the SDK end-to-end test.

Run inside a test namespace: ``python sdk_gateway_server.py HTTP_PORT KEY SECRET SIP_PORT DB``.
Prints ``{"ready": true}`` once the SIP gateway listens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from roomtone import config, server
from roomtone.api.app import GATEWAY


async def main(port: int, key: str, secret: str, sip_port: int, db: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config.load(env={"LIVEKIT_API_KEY": key, "LIVEKIT_API_SECRET": secret}, bind="127.0.0.1", port=port)
    cfg.raw = {"sip": {"db": db, "port": sip_port, "transports": ["UDP"],
                       "rtp_port_range_start": 30000, "rtp_port_range_end": 30999}}
    srv = await server.start(cfg)  # the API and gateway are default services
    try:
        print(json.dumps({"ready": GATEWAY in srv.app}), flush=True)
        await asyncio.Event().wait()
    finally:
        await srv.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]))
