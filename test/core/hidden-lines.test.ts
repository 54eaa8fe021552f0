// The hidden-answer reader behind both password prompts (myftpd user add/passwd, myftp's login), fed chunk by chunk
// through a fake terminal: each push is one read of the terminal, so line ends, characters and control keys can be
// split across reads as a terminal or a paste splits them.
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readHiddenLines, type HiddenKeys, type HiddenRead } from "../../src/core/hidden-lines.js";

/** A terminal on the input side: a real readable stream (so unshift and push behave as stdin's) with a raw mode. */
class FakeTty extends Readable {
  readonly isTTY = true;
  isRaw: boolean;
  /** The modes set, in order. */
  readonly modes: boolean[] = [];
  constructor(raw = false) {
    super();
    this.isRaw = raw;
  }
  override _read(): void {}
  setRawMode(mode: boolean): this {
    this.isRaw = mode;
    this.modes.push(mode);
    return this;
  }
}

const ADMIN: HiddenKeys = { ctrlDEndsLine: true, ctrlUKillsLine: false };
const CLIENT: HiddenKeys = { ctrlDEndsLine: false, ctrlUKillsLine: true };

const tick = () => new Promise<void>((r) => setImmediate(r));

/** An output that records what is written, each write with the terminal's mode at the time. */
function recorder(tty: FakeTty) {
  const writes: string[] = [];
  const output = {
    write(chunk: string) {
      writes.push(`${tty.isRaw ? "raw" : "cooked"} ${chunk}`);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { output, writes, written: () => writes.map((w) => w.replace(/^\S+ /, "")).join("") };
}

/**
 * Starts a read of `prompts` on a fake terminal and types `reads` into it, one terminal read each (a tick apart);
 * gives how the read ended, what was written, the modes set, and the terminal (to read what was left on it).
 */
async function typed(prompts: [string, ...string[]], reads: (string | Buffer)[], keys: HiddenKeys = CLIENT, tty = new FakeTty()) {
  const out = recorder(tty);
  let result: HiddenRead | undefined;
  const reading = readHiddenLines(tty as unknown as NodeJS.ReadStream, out.output, prompts, keys).then((r) => (result = r));
  for (const r of reads) {
    await tick();
    if (result) break;
    tty.push(typeof r === "string" ? Buffer.from(r, "utf8") : r);
  }
  await tick();
  if (!result) {
    // Nothing typed ended it: end the input so that the test does not hang, and say so.
    tty.push(null);
    await reading;
    throw new Error(`the read did not end; written: ${JSON.stringify(out.written())}`);
  }
  return { result, written: out.written(), writes: out.writes, modes: tty.modes, tty };
}

/** What is left on the terminal for the next reader, as it would read it. */
async function leftOn(tty: FakeTty): Promise<string> {
  let got = "";
  const onData = (d: Buffer) => (got += d.toString("utf8"));
  tty.on("data", onData);
  tty.resume();
  await tick();
  await tick();
  tty.off("data", onData);
  tty.pause();
  return got;
}

describe("readHiddenLines", () => {
  it("takes a CR and the LF of the next read as one line end between two prompts", async () => {
    const { result, written } = await typed(["Password: ", "Repeat password: "], ["s3cret\r", "\nagain\r"], ADMIN);
    expect(result).toEqual({ end: "answered", answers: ["s3cret", "again"] });
    expect(written).toBe("Password: \nRepeat password: \n");
  });

  it("takes CR LF in one read as one line end, and an LF alone as one too", async () => {
    const { result } = await typed(["A: ", "B: ", "C: "], ["one\r\ntwo\nthree\r"], ADMIN);
    expect(result).toEqual({ end: "answered", answers: ["one", "two", "three"] });
  });

  it("answers the second prompt with a repeat typed ahead in the same read", async () => {
    const { result, written, writes } = await typed(["Password: ", "Repeat password: "], ["s3cret\rs3cret\r"], ADMIN);
    expect(result).toEqual({ end: "answered", answers: ["s3cret", "s3cret"] });
    expect(written).toBe("Password: \nRepeat password: \n");
    // Echo stays off from before the first prompt until the last answer is read.
    expect(writes.filter((w) => w.endsWith(": "))).toEqual(["raw Password: ", "raw Repeat password: "]);
  });

  it("switches raw mode on before the prompt and gives the previous mode back however the read ends", async () => {
    const cases: [(string | Buffer)[], HiddenRead["end"]][] = [
      [["pw\r"], "answered"],
      [["p\x03"], "interrupted"],
      [["\x04"], "cancelled"],
    ];
    for (const [reads, end] of cases) {
      for (const wasRaw of [false, true]) {
        const { result, modes, tty } = await typed(["P: "], reads, CLIENT, new FakeTty(wasRaw));
        expect(result.end).toBe(end);
        expect(modes).toEqual([true, wasRaw]);
        expect(tty.isRaw).toBe(wasRaw);
      }
    }
  });

  it("ends with cancelled at the end of input and with failed on a read error, mode restored and the line ended", async () => {
    const ended = new FakeTty();
    const endOut = recorder(ended);
    const endRead = readHiddenLines(ended as unknown as NodeJS.ReadStream, endOut.output, ["P: "], CLIENT);
    await tick();
    ended.push("pa");
    ended.push(null);
    expect(await endRead).toEqual({ end: "cancelled" });
    expect(ended.modes).toEqual([true, false]);
    expect(endOut.written()).toBe("P: \n");

    const broken = new FakeTty();
    const errOut = recorder(broken);
    const errRead = readHiddenLines(broken as unknown as NodeJS.ReadStream, errOut.output, ["P: "], CLIENT);
    await tick();
    const err = new Error("EIO");
    broken.destroy(err);
    expect(await errRead).toEqual({ end: "failed", error: err });
    expect(broken.modes).toEqual([true, false]);
    expect(errOut.written()).toBe("P: \n");
  });

  it("takes Backspace and DEL back a whole character, however many bytes it is in UTF-8", async () => {
    // é is 2 bytes, € 3, 😀 4 (a surrogate pair in JavaScript): each goes with one Backspace.
    const { result } = await typed(["P: "], ["caf\u00e9\x7f\x7fe\u20ac\b\u{1f600}\x7f!\r"]);
    expect(result).toEqual({ end: "answered", answers: ["cae!"] });
  });

  it("joins a character split across two reads, and Backspace then takes it back whole", async () => {
    const euro = Buffer.from("\u20ac", "utf8");
    const { result } = await typed(["P: ", "Again: "], [Buffer.concat([Buffer.from("x"), euro.subarray(0, 2)]), Buffer.concat([euro.subarray(2), Buffer.from("\r")]), "y\u20ac", "\x7f\r"], ADMIN);
    expect(result).toEqual({ end: "answered", answers: ["x\u20ac", "y"] });
  });

  it("ends an answer on Ctrl-D after some characters where the keys say so, and ignores it where not", async () => {
    const ends = await typed(["Password: ", "Repeat password: "], ["s3cret\x04s3cret\x04"], ADMIN);
    expect(ends.result).toEqual({ end: "answered", answers: ["s3cret", "s3cret"] });
    const ignored = await typed(["P: "], ["s3\x04cret\r"], CLIENT);
    expect(ignored.result).toEqual({ end: "answered", answers: ["s3cret"] });
  });

  it("cancels on Ctrl-D on an empty line, also at the second prompt, and on Ctrl-D after Backspace emptied it", async () => {
    expect((await typed(["P: "], ["\x04"], ADMIN)).result).toEqual({ end: "cancelled" });
    expect((await typed(["P: ", "R: "], ["s3cret\r\x04"], ADMIN)).result).toEqual({ end: "cancelled" });
    expect((await typed(["P: "], ["ab\x7f\x7f\x04"], CLIENT)).result).toEqual({ end: "cancelled" });
  });

  it("takes the line back on Ctrl-U where the keys say so, and ignores it where not", async () => {
    expect((await typed(["P: "], ["wrong\x15pw\r"], CLIENT)).result).toEqual({ end: "answered", answers: ["pw"] });
    expect((await typed(["P: "], ["pw\x15x\r"], ADMIN)).result).toEqual({ end: "answered", answers: ["pwx"] });
  });

  it("ignores other control keys (Tab, Escape)", async () => {
    expect((await typed(["P: "], ["p\tw\x1b\r"])).result).toEqual({ end: "answered", answers: ["pw"] });
  });

  it("interrupts on Ctrl-C and ends the prompt's line", async () => {
    const { result, written } = await typed(["P: "], ["typo\x03"]);
    expect(result).toEqual({ end: "interrupted" });
    expect(written).toBe("P: \n");
  });

  it("hands what follows the line end in its read back to the input, as it came", async () => {
    const crlf = await typed(["P: "], [Buffer.from("pw\r\nmkdir \u00e9t\u00e9\rcd x\r", "utf8")]);
    expect(crlf.result).toEqual({ end: "answered", answers: ["pw"] });
    expect(await leftOn(crlf.tty)).toBe("mkdir \u00e9t\u00e9\rcd x\r");
    // So does what follows a Ctrl-C or a Ctrl-D: the next reader gets it, never the answer typed so far.
    const cancelled = await typed(["P: "], ["typo\x03ls\r"]);
    expect(cancelled.result).toEqual({ end: "interrupted" });
    expect(await leftOn(cancelled.tty)).toBe("ls\r");
    const eof = await typed(["P: "], ["\x04pwd\r"]);
    expect(eof.result).toEqual({ end: "cancelled" });
    expect(await leftOn(eof.tty)).toBe("pwd\r");
  });

  it("hands back nothing of the answers, and only what follows the last one after a repeat typed ahead", async () => {
    const { result, tty } = await typed(["P: ", "R: "], ["a\rb\rls\r"], ADMIN);
    expect(result).toEqual({ end: "answered", answers: ["a", "b"] });
    expect(await leftOn(tty)).toBe("ls\r");
  });

  it("drops the LF of a CR LF that comes after the read ended, for whoever reads next", async () => {
    const { result, tty } = await typed(["P: "], ["pw\r"]);
    expect(result).toEqual({ end: "answered", answers: ["pw"] });
    tty.push(Buffer.from("\nls\r"));
    expect(await leftOn(tty)).toBe("ls\r");
    // Only that one LF: a later one is a line end of its own.
    tty.push(Buffer.from("\n"));
    expect(await leftOn(tty)).toBe("\n");
  });

  it("keeps an LF that does not follow the last line's CR", async () => {
    const { tty } = await typed(["P: "], ["pw\n"]);
    tty.push(Buffer.from("\nls\r"));
    expect(await leftOn(tty)).toBe("\nls\r");
  });
});
