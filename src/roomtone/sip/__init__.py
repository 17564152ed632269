"""SIP: sans-IO messages, transactions, dialogs, digest auth and SDP; asyncio transports as adapters."""
