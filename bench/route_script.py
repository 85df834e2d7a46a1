"""What the broker's route script costs Redis per batch (broker/route.py).

    .venv/bin/python bench/route_script.py [--nodes 4] [--users-per-node 10000] [--batch 1000]

Fills a throwaway prefix on a real Redis with ``--nodes`` routed nodes of
``--users-per-node`` users each, then times the script for a batch whose
recipients are ``--batch`` users spread over the nodes, against one
PUBLISH of that batch's bytes on a channel nobody reads (the cost before
routing). Prints the median microseconds per call, as the client sees it
(a loopback round trip included), and Redis's own figure from
``INFO commandstats``. The prefix is deleted at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time

import redis

from tidings.broker.route import ROUTE, route_arguments, route_keys
from tidings.ids import UserId
from tidings.nodes import ROUTED_FIELD, presence_key, registry_key, routes_key, routing_since_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--users-per-node", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000, help="distinct users in a batch")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--payload", type=int, default=200, help="bytes per user in PUBLISH")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.url)
    prefix = f"tidings_bench_{secrets.token_hex(4)}:"
    try:
        nodes = [f"{n:08x}" for n in range(args.nodes)]
        client.hset(registry_key(prefix), mapping={node: b"r" for node in nodes})
        for index, node in enumerate(nodes):
            first = index * args.users_per_node
            users = {str(u): 1 for u in range(first, first + args.users_per_node)}
            client.hset(presence_key(prefix, node), mapping={ROUTED_FIELD: 1, **users})
            client.sadd(routes_key(prefix, node), *users)
        client.set(routing_since_key(prefix), 0)
        everyone = args.nodes * args.users_per_node
        batch = route_arguments(
            prefix, "me", 10, [UserId(u * everyone // args.batch) for u in range(args.batch)]
        )
        route = client.register_script(ROUTE)
        payload = b"x" * (args.payload * args.batch)

        def timed(call: object) -> float:
            samples = []
            for _ in range(args.calls):
                start = time.perf_counter()
                call()  # type: ignore[operator]
                samples.append(time.perf_counter() - start)
            return statistics.median(samples) * 1e6

        answer = route(keys=route_keys(prefix), args=batch)
        assert answer[0] == 1 and len(answer) == 1 + 2 * args.nodes, answer[:3]
        client.config_resetstat()
        script_us = timed(lambda: route(keys=route_keys(prefix), args=batch))
        stats = client.info("commandstats")
        inside = stats.get("cmdstat_evalsha", {}).get("usec_per_call", float("nan"))
        publish_us = timed(lambda: client.publish(f"{prefix}nobody", payload))
        print(
            f"nodes={args.nodes} users/node={args.users_per_node} batch users={args.batch}: "
            f"route script {script_us:.0f} us per call ({inside:.0f} us inside Redis), "
            f"one PUBLISH of {len(payload)} bytes {publish_us:.0f} us"
        )
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
