// The official Socket.IO client (socket.io-client, Node), driven line by line by
// tests/socketio_clients.rs: JSON commands on stdin, one JSON line on stdout per thing seen.
//
//   node agent.js http://127.0.0.1:PORT /chat '{"auth":{...},"query":{...}}'
//   stdin:  {"emit":"message","args":["hi"],"ack":true}   {"disconnect":true}
//   stdout: {"event":"connect"}  {"event":"welcome","args":[{...}]}  {"event":"ack","args":[...]}
//           {"event":"connect_error","message":"..."}  {"event":"disconnect","reason":"..."}
//
// The only option wschat needs is transports: ['websocket'] (it offers no long-polling).
"use strict";
const readline = require("node:readline");
const { io } = require("socket.io-client");

const [url, nsp, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson || "{}");
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(url + (nsp === "/" ? "" : nsp), {
  transports: ["websocket"],
  reconnection: false,
  auth: options.auth || {},
  query: options.query || {},
});
socket.on("connect", () => print({ event: "connect" }));
socket.on("connect_error", (err) => print({ event: "connect_error", message: err.message }));
socket.on("disconnect", (reason) => print({ event: "disconnect", reason }));
socket.onAny((event, ...args) => print({ event, args }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  if (command.emit !== undefined) {
    const args = command.args || [];
    if (command.ack) {
      socket.emit(command.emit, ...args, (...reply) => print({ event: "ack", args: reply }));
    } else {
      socket.emit(command.emit, ...args);
    }
  } else if (command.disconnect) {
    socket.disconnect();
  }
}).on("close", () => process.exit(0));
