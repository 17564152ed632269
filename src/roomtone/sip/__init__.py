"""SIP: sans-IO messages, transactions, dialogs, digest auth and SDP; asyncio transports as adapters.

Layers, bottom up (each importable alone; only ``transport`` and ``ua`` do I/O):

- ``message``: parse/serialize (``parse``, ``StreamParser``, ``Request``, ``Response``, ``ParseError``)
- ``transaction``: RFC 3261 §17 state machines fed messages and time (``TransactionLayer``)
- ``dialog``: RFC 3261 §12 dialogs (``Dialog``, ``DialogTable``)
- ``auth``: digest authentication; ``sdp``: SDP and offer/answer
- ``transport``: asyncio UDP/TCP/TLS; ``ua``: the asyncio user agent (``UserAgent``, ``Call``)

The package namespace stays empty on purpose: importing ``roomtone.sip`` must not pull asyncio
adapters into sans-IO users. Import from the submodules.
"""
