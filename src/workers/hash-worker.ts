// Worker thread: hashes a byte range of a file, streamed from disk in large chunks.

import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import { crc32 } from "node:zlib";
import type { HashRequest, HashResult } from "./hash-types.js";
import { NODE_HASH_NAMES } from "./hash-types.js";

async function* chunks(req: HashRequest): AsyncGenerator<Buffer> {
  if (req.end !== null && req.end < req.start) return; // an empty range
  // A descriptor given by the server stays its own to close.
  const stream = createReadStream(req.path, {
    fd: req.fd,
    autoClose: req.fd === undefined,
    start: req.start,
    end: req.end === null ? undefined : req.end,
    highWaterMark: 1 << 20,
  });
  for await (const chunk of stream) yield chunk;
}

async function hashRange(req: HashRequest): Promise<HashResult> {
  const stream = chunks(req);
  if (req.algorithm === "CRC32") {
    let crc = 0;
    let bytes = 0;
    for await (const chunk of stream) {
      crc = crc32(chunk, crc);
      bytes += chunk.length;
    }
    return { digest: (crc >>> 0).toString(16).padStart(8, "0"), bytes };
  }
  const h = createHash(NODE_HASH_NAMES[req.algorithm]);
  let bytes = 0;
  for await (const chunk of stream) {
    h.update(chunk);
    bytes += chunk.length;
  }
  return { digest: h.digest("hex"), bytes };
}

parentPort!.on("message", (req: HashRequest) => {
  hashRange(req).then(
    (value) => parentPort!.postMessage({ ok: true, value }),
    (err: NodeJS.ErrnoException) => parentPort!.postMessage({ ok: false, error: err.message, code: err.code }),
  );
});
