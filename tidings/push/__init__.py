"""Offline push (PROTOCOL-v2 §8): who gets a Web Push after a commit, and sending it.

- ``keys``: the VAPID key pair (RFC 8292) and the signed header per push service;
- ``addresses``: which endpoints may be reached (https, public addresses only);
- ``decide``: the pure rules: a push's payload, and the burst collapse per
  user and conversation;
- ``sender``: the bounded queue after the writer, and the delivery (RFC 8291
  ``aes128gcm`` through pywebpush, POSTed with aiohttp).

Nothing here is on the message path: the writer's publish only appends to a
bounded queue, and a full queue drops (counted) instead of waiting.
"""
