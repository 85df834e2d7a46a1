"""The chat rules, with no knowledge of transports: who may do what, and who hears of it.

Plain async classes over the ports (store, chat-list state, presence,
publisher), built in ``tidings.app``: ``accounts``, ``conversations``
(sends, reads, history, the chat list), ``groups``, ``admin`` (the
integration API's acts), ``writer`` (group commit) and ``recipients`` (who
gets each event). The HTTP route and the WebSocket frame for one act call
the same method here.
"""
