// A pino logger whose records the test can read: events are asserted on, not grepped from stderr.

import pino, { type Logger } from "pino";

export interface CapturedLog {
  logger: Logger;
  records: Record<string, unknown>[];
  events(name: string): Record<string, unknown>[];
}

export function captureLog(level = "debug"): CapturedLog {
  const records: Record<string, unknown>[] = [];
  const logger = pino(
    { level },
    {
      write(line: string) {
        records.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { logger, records, events: (name) => records.filter((r) => r.event === name) };
}
