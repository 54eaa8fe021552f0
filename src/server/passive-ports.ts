// Hands out listening ports from the configured passive range. A port is busy from the moment its listener
// opens until it closes; the next search starts after the last port given out so ports rotate.

import * as net from "node:net";
import { MyftpError } from "../core/errors.js";

export interface PassiveListener {
  server: net.Server;
  port: number;
  /** Closes the listener and frees its port; safe to call more than once. */
  close(): void;
}

export class PassivePorts {
  private readonly busy = new Set<number>();
  /** Listeners sessions keep between transfers, each with what gives it up. */
  private readonly kept = new Map<PassiveListener, () => void>();
  private next: number;

  /** min = max = 0 lets the system pick any free port. */
  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {
    if (min > max || min < 0 || max > 65535) throw new Error(`bad passive port range ${min}-${max}`);
    this.next = min;
  }

  get inUse(): number {
    return this.busy.size;
  }

  /**
   * Whether a session may keep its listener open between transfers for its next PASV: always when the system picks
   * the ports, and in a configured range only while most of it is free, so kept ports never starve other sessions.
   */
  get mayKeep(): boolean {
    if (this.min === 0 && this.max === 0) return true;
    const span = this.max - this.min + 1;
    return span >= 16 && this.busy.size * 2 < span;
  }

  /** Records a listener a session keeps for its next PASV; `drop` closes it when the range runs out. */
  keep(listener: PassiveListener, drop: () => void): void {
    this.kept.set(listener, drop);
  }

  unkeep(listener: PassiveListener): void {
    this.kept.delete(listener);
  }

  async open(host: string): Promise<PassiveListener> {
    if (this.min === 0 && this.max === 0) return this.listenOn(host, 0);
    const span = this.max - this.min + 1;
    // Every port busy: a port a session merely keeps is taken back (the oldest first), then the search runs again.
    for (let round = 0; round <= span; round++) {
      for (let i = 0; i < span; i++) {
        const port = this.min + ((this.next - this.min + i) % span);
        if (this.busy.has(port)) continue;
        this.busy.add(port);
        try {
          const l = await this.listenOn(host, port);
          this.next = port + 1 > this.max ? this.min : port + 1;
          return l;
        } catch (err) {
          this.busy.delete(port);
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== "EADDRINUSE" && code !== "EACCES") throw err;
        }
      }
      const oldest = this.kept.values().next();
      if (oldest.done) break;
      oldest.value();
    }
    throw new MyftpError("too-many", "No passive port available");
  }

  private listenOn(host: string, port: number): Promise<PassiveListener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: true });
      const onError = (err: Error) => {
        server.close();
        reject(err);
      };
      server.once("error", onError);
      server.listen({ host, port, exclusive: true, backlog: 4 }, () => {
        server.off("error", onError);
        // A failed accept (out of descriptors) must not end the process; the transfer waiting on it times out (425).
        server.on("error", () => undefined);
        const actual = (server.address() as net.AddressInfo).port;
        let closed = false;
        resolve({
          server,
          port: actual,
          close: () => {
            if (closed) return;
            closed = true;
            server.close();
            if (port !== 0) this.busy.delete(port);
          },
        });
      });
    });
  }
}
