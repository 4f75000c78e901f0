"""Idle memory per connection with permessage-deflate negotiated, measured from outside.

The swarm (`loadtest`) speaks WebSocket through tungstenite, which has no permessage-deflate, so
this small script opens the connections instead, with the Python `websockets` library (which
offers permessage-deflate by default), and reads the server's resident memory from /proc:

    python3 loadtest/idle_deflate.py --url ws://127.0.0.1:8080/ws --clients 2000 \
        --server-pid PID [--no-deflate] [--rooms-per-client]

It opens --clients connections (at most 200 at a time), each reading its welcome, checks every
one negotiated (or, with --no-deflate, did not offer) permessage-deflate, waits --settle
seconds, reads the server's VmRSS, closes them all and prints one line:
rss before, after, and (after - before) / clients. Bounded: every step has a timeout, and
loopback only (it refuses any other host).
"""

import argparse
import asyncio
import ipaddress
import sys
import urllib.parse

from websockets.asyncio.client import connect


def vm_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--no-deflate", action="store_true")
    p.add_argument("--rooms-per-client", action="store_true", help="a room of one per client")
    p.add_argument("--settle", type=float, default=3.0)
    args = p.parse_args()
    host = urllib.parse.urlsplit(args.url).hostname
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        sys.exit("loopback addresses only")
    if args.clients > 20000:
        sys.exit("at most 20000 clients")

    before = vm_rss(args.server_pid)
    compression = None if args.no_deflate else "deflate"
    gate = asyncio.Semaphore(200)
    sockets = []

    async def open_one(i):
        room = f"idle{i}" if args.rooms_per_client else "idle"
        async with gate:
            ws = await asyncio.wait_for(
                connect(f"{args.url}?room={room}&name=c{i}", compression=compression,
                        ping_interval=None, max_queue=None), 30)
            await asyncio.wait_for(ws.recv(), 30)  # the welcome
            sockets.append(ws)
            return ws.response.headers.get("Sec-WebSocket-Extensions") or ""

    answers = await asyncio.gather(*(open_one(i) for i in range(args.clients)))
    negotiated = sum("permessage-deflate" in a for a in answers)
    await asyncio.sleep(args.settle)
    after = vm_rss(args.server_pid)
    await asyncio.gather(*(asyncio.wait_for(ws.close(), 30) for ws in sockets),
                         return_exceptions=True)
    per = (after - before) / args.clients
    print(f"clients {args.clients} (deflate negotiated by {negotiated}); server rss before "
          f"{before / 2**20:.1f} MiB, with them open {after / 2**20:.1f} MiB: "
          f"{per:.0f} bytes ({per / 1024:.2f} KiB) per connection")


asyncio.run(main())
