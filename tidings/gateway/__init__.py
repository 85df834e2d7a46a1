"""The edge: HTTP routes and the WebSocket endpoint on one aiohttp server.

It parses and validates, authenticates, holds connections and writes
frames; the rules live in ``tidings.service``.
"""
