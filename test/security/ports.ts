// Finding a block of free TCP ports on 127.0.0.1 for a passive range (the tests that count ports in use need a
// real range: with 0-0 the system picks ports and nothing is counted).

import * as net from "node:net";

/** n consecutive ports that are free right now. */
export async function freeRange(n: number): Promise<[number, number]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // Below the ephemeral range (32768+), so outgoing connections do not take them meanwhile.
    const base = 10000 + Math.floor(Math.random() * 20000);
    const held: net.Server[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const srv = net.createServer();
        await new Promise<void>((resolve, reject) => {
          srv.once("error", reject);
          srv.listen({ host: "127.0.0.1", port: base + i, exclusive: true }, resolve);
        });
        held.push(srv);
      }
      return [base, base + n - 1];
    } catch {
      continue;
    } finally {
      await Promise.all(held.map((h) => new Promise((r) => h.close(r))));
    }
  }
  throw new Error("no free port range");
}
