"""The official Python Socket.IO client (python-socketio), driven line by line by
tests/socketio_clients.rs, speaking the same lines as agent.js:

    python3 agent.py http://127.0.0.1:PORT /chat '{"auth":{...},"query":{...}}'
    stdin:  {"emit":"message","args":["hi"],"ack":true}   {"disconnect":true}
    stdout: {"event":"connect"}  {"event":"welcome","args":[{...}]}  {"event":"ack","args":[...]}

The only option wschat needs is transports=['websocket'] (it offers no long-polling).
"""

import json
import sys
import threading
import urllib.parse

import socketio

url, nsp = sys.argv[1], sys.argv[2]
options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
lock = threading.Lock()


def emit_line(line):
    with lock:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


sio = socketio.Client(reconnection=False)
sio.on("connect", lambda: emit_line({"event": "connect"}), namespace=nsp)
sio.on(
    "connect_error",
    lambda data: emit_line({"event": "connect_error", "message": (data or {}).get("message") if isinstance(data, dict) else str(data)}),
    namespace=nsp,
)
sio.on("disconnect", lambda *reason: emit_line({"event": "disconnect", "reason": str(reason)}), namespace=nsp)
sio.on("*", lambda event, *args: emit_line({"event": event, "args": list(args)}), namespace=nsp)

query = options.get("query") or {}
full_url = url + ("?" + urllib.parse.urlencode(query) if query else "")
try:
    sio.connect(full_url, namespaces=[nsp], transports=["websocket"], auth=options.get("auth"), wait_timeout=10)
except socketio.exceptions.ConnectionError as err:
    emit_line({"event": "connect_error", "message": str(err)})

for line in sys.stdin:
    if not line.strip():
        continue
    command = json.loads(line)
    if "emit" in command:
        args = tuple(command.get("args") or ())
        callback = (lambda *reply: emit_line({"event": "ack", "args": list(reply)})) if command.get("ack") else None
        sio.emit(command["emit"], args, namespace=nsp, callback=callback)
    elif command.get("disconnect"):
        sio.disconnect()
sio.disconnect()
