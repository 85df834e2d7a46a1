"""tidings: a self-hosted instant-messaging server.

Private chat, group chat and a live QQ/WeChat-style chat list over
WebSocket, with the history in SQL. See docs/architecture.md.
"""

__version__ = "0.1.0"
