"""``tidings bench``: a load generator that speaks the wire contract over real sockets.

Scenarios ``connect``, ``private`` (closed loop), ``private-open`` (open
loop), ``group``, ``chatlist`` and ``history``; each prints a JSON line
(also appended to ``bench/results/``) and, at the end, a table. The load
runs in child processes with a lean socket client so that it is not the
bottleneck; see docs/benchmarks.md for the method and the figures.
"""
