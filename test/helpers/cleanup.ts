// What a test file starts and each test leaves behind: closed after every test.
import type * as net from "node:net";
import { afterEach } from "vitest";
import type { RunningServer } from "./myftpd.js";
import type { RawFtp } from "./raw-ftp.js";

export interface Opened {
  servers: RunningServer[];
  clients: RawFtp[];
  sockets: net.Socket[];
}

/** Lists to push servers, control connections and data sockets to; after each test they are closed and emptied. */
export function closedAfterEach(): Opened {
  const opened: Opened = { servers: [], clients: [], sockets: [] };
  afterEach(async () => {
    for (const d of opened.sockets.splice(0)) d.destroy();
    for (const c of opened.clients.splice(0)) c.sock.destroy();
    for (const s of opened.servers.splice(0)) await s.close();
  });
  return opened;
}
