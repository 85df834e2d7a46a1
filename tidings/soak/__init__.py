"""``tidings soak``: a long randomized run against real servers, then every invariant checked.

Many clients connect to random nodes, send (alone and pipelined, over
WebSocket and HTTP), mark read, repeat old client_msg_ids, drop their
connections abruptly and come back, for a set time, while nodes may be
stopped and started again. At the end the stored history is read back
and compared with everything the clients were acked and received: no
message lost or stored twice, every connection's events in seq order,
every chat list equal to a recomputation, no memory or task growth.
See docs/reliability.md for the commands and the figures.
"""
