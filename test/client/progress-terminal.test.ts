// The progress bar as a person sees it on a terminal: fitted to the terminal's width, also where the terminal
// reports no size and $COLUMNS gives it, so that redrawing it never wraps a line and leaves junk above.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { displayWidth } from "../../src/client/progress.js";
import { clientWorkDir, makeFile, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

/** The bar lines drawn: each redraw starts with a carriage return and ends by clearing the rest of the line. */
function barLines(out: string): string[] {
  return [...out.matchAll(/\r([^\r\n]*)\x1b\[K/g)].map((m) => m[1]!).filter((l) => l.length > 0);
}

describe("the progress bar on a terminal", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("takes the width from $COLUMNS when the terminal reports none, for names of any width", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const name = "日本語のファイル名前がとても長いです.bin";
    await makeFile(join(s.homeOf(USER.name), name), 1024 * 1024);
    for (const columns of [20, 40]) {
      const pty = spawnPty(["get", "--limit-rate", "700k", "--no-resume", s.url(USER.name, USER.password, `/${encodeURIComponent(name)}`)], {
        cwd: work.path,
        env: { HOME: work.path, COLUMNS: String(columns) },
      });
      expect(await pty.exit(30_000)).toBe(0);
      const bars = barLines(pty.output());
      expect(bars.length).toBeGreaterThan(2);
      for (const line of bars) expect(displayWidth(line), line).toBeLessThanOrEqual(columns - 1);
    }
  });
});
