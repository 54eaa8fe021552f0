// `myftpd user add`'s two password prompts and the terminal. The terminal is in raw mode (no echo) before the first
// prompt shows and stays so until the repeat is read, then gets its mode back however the prompts end; a CR whose LF
// comes in the next read (a terminal sending CR LF) ends one answer, not the password and then an empty repeat.
import { EventEmitter } from "node:events";
import { rmSync } from "node:fs";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { PromptInterrupted } from "../../src/cli/prompt.js";
import { userAdd } from "../../src/cli/user-admin.js";
import { spawnPty } from "../client/cli-helpers.js";
import { MYFTPD_BIN, runMyftpd, tempDir } from "../helpers/myftpd.js";

const data = tempDir("myftp-prompt-terminal-");
afterAll(() => rmSync(data, { recursive: true, force: true }));

/** A terminal on stdin that records what is done to it, in order with what is written to stderr. */
class FakeTerminal extends EventEmitter {
  readonly isTTY = true;
  isRaw = false;
  readonly readableLength = 0;
  constructor(private readonly log: string[]) {
    super();
  }
  setRawMode(mode: boolean): this {
    this.isRaw = mode;
    this.log.push(`raw ${mode}`);
    return this;
  }
  setEncoding(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  read(): null {
    return null;
  }
}

describe("the admin password prompts and the terminal mode", () => {
  const realStdin = Object.getOwnPropertyDescriptor(process, "stdin")!;
  afterEach(() => {
    Object.defineProperty(process, "stdin", realStdin);
    vi.restoreAllMocks();
  });

  /** Runs `user add NAME` in this process with a fake terminal; `type` answers, given the terminal. */
  async function addWith(name: string, type: (tty: FakeTerminal, shown: (text: string) => Promise<void>) => Promise<void>) {
    const log: string[] = [];
    const tty = new FakeTerminal(log);
    Object.defineProperty(process, "stdin", { configurable: true, get: () => tty });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: unknown) => {
      log.push(`write ${String(chunk)}`);
      return true;
    });
    const shown = async (text: string) => {
      for (let i = 0; i < 500 && !log.includes(`write ${text}`); i++) await new Promise((r) => setTimeout(r, 10));
      expect(log).toContain(`write ${text}`);
      expect(tty.listenerCount("data")).toBeGreaterThan(0);
    };
    const result = userAdd(data, name, {}).then(
      (out) => ({ out, err: undefined }),
      (err: unknown) => ({ out: undefined, err }),
    );
    await type(tty, shown);
    return { ...(await result), log };
  }

  it("switches echo off before the first prompt shows and keeps it off until the repeat is read", async () => {
    const { out, log } = await addWith("erin", async (tty, shown) => {
      await shown("Password: ");
      tty.emit("data", "s3cret\r");
      await shown("Repeat password: ");
      tty.emit("data", "s3cret\r");
    });
    expect(out).toMatch(/added user erin/);
    const modes = log.filter((l) => l.startsWith("raw ") || l === "write Password: " || l === "write Repeat password: ");
    expect(modes).toEqual(["raw true", "write Password: ", "write Repeat password: ", "raw false"]);
  });

  it("gives the terminal its mode back when Ctrl-C or Ctrl-D ends the prompts, or the terminal goes", async () => {
    for (const [name, input, expected] of [
      ["fay", "s3\u0003", PromptInterrupted],
      ["gus", "s3cret\r\u0004", Error],
      ["hal", undefined, Error],
    ] as const) {
      const { err, log } = await addWith(name, async (tty, shown) => {
        await shown("Password: ");
        if (input === undefined) tty.emit("end");
        else tty.emit("data", input);
      });
      expect(err).toBeInstanceOf(expected);
      expect(log.filter((l) => l.startsWith("raw "))).toEqual(["raw true", "raw false"]);
    }
    const list = await runMyftpd(["user", "list", "--data", data]);
    expect(list.stdout).not.toMatch(/fay|gus|hal/);
  });

  it("takes a CR and the LF of the next read as one line end (pseudo-terminal)", async () => {
    const pty = spawnPty(["user", "add", "ivy", "--data", data], { bin: MYFTPD_BIN });
    await pty.expect(/Password: /);
    pty.send("s3cret\r");
    // The LF of the CR LF comes in a read of its own, once the repeat is asked for (a stimulus, not a measure).
    await pty.expect(/Repeat password: /);
    pty.send("\ns3cret\r\n");
    expect(await pty.exit()).toBe(0);
    expect(pty.output()).toMatch(/added user ivy/);
    expect(pty.output()).not.toMatch(/do not match|s3cret/);
    const list = await runMyftpd(["user", "list", "--data", data]);
    expect(list.stdout).toMatch(/ivy/);
  });
});
