"""The cyclic garbage collector of a long-running process: a server node, a load process.

CPython counts tracked objects made minus freed, and runs a young
collection each time that count passes the first threshold (700 by
default). Under load the live objects of the messages in flight (thousands,
each a few containers that live until their ack) pass it every few dozen
sends; the young collections promote them, and with the startup heap
frozen the long-lived generation is small, so a full collection that walks
every socket's state follows every few tenths of a second: 16-26 % of a
loaded server's core went to the collector (docs/benchmarks.md, stop 39).
At 50,000 a collection comes when that many more objects are alive than at
the last one: rarely while a load holds steady, while cyclic garbage still
sets one off, so what it holds stays small (a few MB of cycles at most).
"""

from __future__ import annotations

import gc

#: The collector's first threshold once a process is set up (Python's default: 700).
YOUNG_THRESHOLD = 50_000


def settle() -> None:
    """Call once what the process keeps for its life is made (modules, tables, the app,
    a load's connections): the collector stops walking it and runs rarely from now on."""
    # What is made by now lives as long as the process: keep the collector
    # off it, or every full collection walks it all (docs/benchmarks.md, stop 12).
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
