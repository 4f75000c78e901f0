"""A real permessage-deflate peer for wschat: the `websockets` library (PyPI), which offers
permessage-deflate by default and compresses what it sends once it is agreed.

    python3 tests/python/deflate_peer.py HOST:PORT

Run by tests/python_websockets.rs against a server started with --echo. Prints one JSON line of
findings; the Rust test judges them (and the server's /metrics). Every wait is bounded.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect

LIMIT = 20  # seconds for any one step


async def step(awaitable):
    return await asyncio.wait_for(awaitable, LIMIT)


async def main(addr):
    found = {}
    chat = f"ws://{addr}/ws?room=py&name="
    async with connect(chat + "alice") as alice, connect(chat + "bob") as bob:
        found["extensions"] = alice.response.headers.get("Sec-WebSocket-Extensions")
        found["alice_welcome"] = json.loads(await step(alice.recv()))["type"]
        found["bob_welcome"] = json.loads(await step(bob.recv()))["type"]
        assert json.loads(await step(alice.recv()))["type"] == "join"
        text = "a message from Python, long enough to be compressed both ways " * 8
        await step(alice.send(json.dumps({"type": "message", "text": text})))
        event = json.loads(await step(bob.recv()))
        found["bob_got_text"] = event.get("text") == text
        own = json.loads(await step(alice.recv()))
        found["alice_got_own"] = own.get("text") == text

    # /echo: big and many messages, text and binary, each compressed by the client.
    async with connect(f"ws://{addr}/echo", max_size=None) as echo:
        ok = True
        for size in (0, 10, 1000, 100_000, 1_000_000):
            payload = ("deflate me " * (size // 11 + 1))[:size]
            await step(echo.send(payload))
            ok &= await step(echo.recv()) == payload
            data = bytes(range(256)) * (size // 256)
            await step(echo.send(data))
            ok &= await step(echo.recv()) == data
        found["echo_ok"] = ok

    print(json.dumps(found))


asyncio.run(main(sys.argv[1]))
