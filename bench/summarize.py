#!/usr/bin/env python3
"""Medians per case and server from bench/run.sh's results, and switchboard's ratios."""
import collections
import json
import statistics
import sys

METRIC = {  # case -> (field path, higher is better)
    "echo-32": ("messages_per_s", True),
    "echo-64k": ("messages_per_s", True),
    "echo-32-idle-100": ("messages_per_s", True),
    "echo-32-idle-10k": ("messages_per_s", True),
    "broadcast-1k-200": ("latency.p99_ms", False),
    "broadcast-10k-200": ("latency.p99_ms", False),
    "broadcast-1k-max": ("deliveries_per_s", True),
    "connections-10k": ("rss_per_connection", False),
}

# The Rust peers: "vs best Rust" is switchboard against the best of these in each case.
RUST_PEERS = ("fastwebsockets", "tungstenite", "actix-ws", "actix-actors")


def get(row, path):
    for part in path.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    values = collections.defaultdict(list)
    lost = collections.defaultdict(int)
    for row in rows:
        metric = METRIC.get(row.get("case"), (None,))[0]
        value = get(row, metric) if metric else None
        if isinstance(value, (int, float)):
            values[(row["case"], row["server"])].append(value)
        lost[(row.get("case"), row.get("server"))] += row.get("lost", 0) or 0
    known = ["switchboard", "switchboard-actor", "baseline", "fastwebsockets", "tungstenite", "actix-ws", "actix-actors", "node-ws", "raw-tcp"]
    present = {server for (_, server) in values}
    servers = [s for s in known if s in present] + sorted(present - set(known))
    actors = "switchboard-actor" in present
    print(f"{'case':<20}{'metric':<20}" + "".join(f"{s:>18}" for s in servers) + f"{'vs best Rust':>14}{'vs raw':>10}"
          + (f"{'actor/callback':>16}{'actor/actix-actors':>20}" if actors else ""))
    for case, (metric, higher) in METRIC.items():
        med = {s: statistics.median(values[(case, s)]) for s in servers if values.get((case, s))}
        if "switchboard" not in med:
            continue
        cells = "".join(f"{med[s]:>18.1f}" if s in med else f"{'-':>18}" for s in servers)

        def ratio(ours, other):
            if ours is None or other is None or not ours or not other:
                return "-"
            return f"{(ours / other if higher else other / ours):.2f}x"

        peers = [med[s] for s in RUST_PEERS if s in med]
        ours = med["switchboard"]
        best = (max(peers) if higher else min(peers)) if peers else None
        raw = med.get("raw-tcp")
        line = (f"{case:<20}{metric:<20}{cells}{ratio(ours, best):>14}"
                f"{(f'{ours / raw:.2f}x' if raw and higher else '-'):>10}")
        if actors:
            actor = med.get("switchboard-actor")
            line += f"{ratio(actor, ours):>16}{ratio(actor, med.get('actix-actors')):>20}"
        print(line)
    for (case, server), count in sorted(lost.items(), key=str):
        if count:
            print(f"LOST: {case} on {server}: {count} deliveries")
    print(f"rounds: {max((r.get('round', 0) for r in rows), default=0)}; runs: {len(rows)}")


if __name__ == "__main__":
    main()
