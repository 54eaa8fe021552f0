// Asks a Node process listening with --inspect to collect all garbage (S5 measures memory a
// session retains, not what the collector has yet to reclaim). usage: node-gc.mjs ws://127.0.0.1:PORT/ID
// Needs a global WebSocket: Node 22+, or Node 20 with --experimental-websocket.
const url = process.argv[2];
const ws = new WebSocket(url);
const timer = setTimeout(() => {
  process.stderr.write("node-gc: timed out\n");
  process.exit(2);
}, 15000);
ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" }));
ws.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.id !== 1) return;
  clearTimeout(timer);
  ws.close();
  process.exit(msg.error ? 1 : 0);
};
ws.onerror = () => {
  process.stderr.write("node-gc: connection failed\n");
  process.exit(1);
};
