// Reading answers typed at the terminal without echo (passwords): the one reader behind `myftpd user add/passwd`'s two
// prompts and the myftp client's login prompt. Each caller turns how the read ended into its own messages and errors.
import { StringDecoder } from "node:string_decoder";

const CR = 0x0d;
const LF = 0x0a;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BS = 0x08;
const CTRL_U = 0x15;
const DEL = 0x7f;

/** The keys whose meaning the callers differ on; every other key means the same to both. */
export interface HiddenKeys {
  /**
   * Ctrl-D after some characters ends the answer as Enter does (a terminal's own line editing hands the line over
   * so); otherwise it is ignored there. On an empty line it cancels either way.
   */
  readonly ctrlDEndsLine: boolean;
  /** Ctrl-U takes back all that is typed of the answer (a terminal's kill character); otherwise it is ignored. */
  readonly ctrlUKillsLine: boolean;
}

/** How a read ended: every prompt answered, Ctrl-C, Ctrl-D on an empty line or the end of input, or a read error. */
export type HiddenRead =
  | { readonly end: "answered"; readonly answers: string[] }
  | { readonly end: "interrupted" }
  | { readonly end: "cancelled" }
  | { readonly end: "failed"; readonly error: Error };

/**
 * Gives input back to whoever reads the stream next (the shell's readline, another prompt, `put -`): the bytes that
 * followed the line end in the read that ended it go back to the front of the stream with unshift, so they come
 * first and in order. When the line ended with a CR that was the last byte of its read, an LF that comes first in
 * the next read is the rest of that CR LF, not a second (empty) line: it is dropped where the stream takes in data
 * (push), once, whoever reads then. The next reader cannot be left to do it (readline takes a lone LF for an empty
 * line), and the LF may arrive after it has started reading.
 */
const lfWatched = new WeakSet<NodeJS.ReadStream>();

function handBack(input: NodeJS.ReadStream, rest: Buffer, endedWithCr: boolean): void {
  if (rest.length > 0) {
    input.unshift(rest);
    return;
  }
  if (!endedWithCr || lfWatched.has(input)) return;
  // Bytes read already but not yet taken are the next read.
  if (input.readableLength > 0) {
    const next = input.read() as Buffer | string | null;
    if (next !== null) {
      const buf = typeof next === "string" ? Buffer.from(next, "utf8") : next;
      if (buf.length > 1 || buf[0] !== LF) input.unshift(buf[0] === LF ? buf.subarray(1) : buf);
      return;
    }
  }
  lfWatched.add(input);
  const ownPush = Object.prototype.hasOwnProperty.call(input, "push");
  const push = input.push;
  input.push = function (this: NodeJS.ReadStream, chunk: unknown, encoding?: BufferEncoding): boolean {
    // End of input (null) is no read: the LF may still come.
    if (chunk === null) return push.call(this, chunk, encoding);
    lfWatched.delete(input);
    if (ownPush) input.push = push;
    else delete (input as { push?: unknown }).push;
    if (Buffer.isBuffer(chunk) && chunk[0] === LF) chunk = chunk.subarray(1);
    else if (typeof chunk === "string" && chunk.startsWith("\n")) chunk = chunk.slice(1);
    if ((chunk as Buffer | string).length === 0) return true;
    return push.call(this, chunk, encoding);
  };
}

/**
 * Shows each prompt in turn on output and reads its answer from the terminal input with echo off. The terminal is in
 * raw mode (no echo) from before the first prompt shows until the last answer is read, so nothing typed in between
 * is echoed, and gets its mode back however the read ends. Enter (CR, LF, or CR LF, even with the LF in the next read)
 * ends an answer; Ctrl-D on an empty line cancels, Ctrl-C interrupts, Backspace or DEL takes back a character (a whole
 * UTF-8 one); other control keys are ignored, but for Ctrl-D and Ctrl-U as `keys` say. What is typed after an answer
 * (a repeat typed ahead, or pasted with the password) answers the next prompt; what follows the last line end (or
 * the Ctrl-C or Ctrl-D) in its read is left on input for the next reader. The line each prompt is on is ended with a
 * newline. Input must be a TTY; a failure to switch it to raw mode is thrown.
 */
export async function readHiddenLines(
  input: NodeJS.ReadStream,
  output: NodeJS.WritableStream,
  prompts: readonly [string, ...string[]],
  keys: HiddenKeys,
): Promise<HiddenRead> {
  // Raw mode (no echo) before the first prompt shows, so that nothing typed in answer is echoed.
  const wasRaw = input.isRaw;
  input.setRawMode(true);
  return await new Promise<HiddenRead>((resolve) => {
    // Bytes, not strings, are read: a character split across two reads is joined here, and what follows the line
    // end goes back exactly as it came. The control bytes looked for never occur inside a UTF-8 sequence.
    const decoder = new StringDecoder("utf8");
    const answers: string[] = [];
    let value = "";
    // The last answer ended with a CR that was the last byte of its read: an LF first in the next read is its CR LF.
    let afterCr = false;
    let finished = false;
    const finish = (result: HiddenRead, rest?: Buffer, endedWithCr = false) => {
      if (finished) return;
      finished = true;
      input.removeListener("data", onData);
      input.removeListener("end", onEnd);
      input.removeListener("error", onError);
      input.pause();
      try {
        input.setRawMode(wasRaw);
      } catch {
        // The terminal is gone; there is no mode to restore.
      }
      if (rest) handBack(input, rest, endedWithCr);
      // An answer's line was ended as it was read; a read given up ends the line it stopped on.
      if (result.end !== "answered") output.write("\n");
      resolve(result);
    };
    const onData = (data: Buffer | string) => {
      const chunk = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      let from = 0;
      if (afterCr && chunk.length > 0) {
        afterCr = false;
        if (chunk[0] === LF) from = 1;
      }
      for (let i = from; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b >= 0x20 && b !== DEL) continue;
        value += decoder.write(chunk.subarray(from, i));
        from = i + 1;
        if (b === CR || b === LF || (b === CTRL_D && value !== "" && keys.ctrlDEndsLine)) {
          answers.push(value + decoder.end());
          value = "";
          output.write("\n");
          const crlf = b === CR && chunk[i + 1] === LF;
          const next = crlf ? i + 2 : i + 1;
          if (answers.length === prompts.length) {
            const rest = chunk.subarray(next);
            return finish({ end: "answered", answers }, rest, b === CR && !crlf && rest.length === 0);
          }
          afterCr = b === CR && next === chunk.length;
          i = next - 1;
          from = next;
          output.write(prompts[answers.length]!);
          continue;
        }
        if (b === CTRL_C) return finish({ end: "interrupted" }, chunk.subarray(i + 1));
        if (b === CTRL_D && value === "") return finish({ end: "cancelled" }, chunk.subarray(i + 1));
        if (b === DEL || b === BS) value = [...value].slice(0, -1).join("");
        else if (b === CTRL_U && keys.ctrlUKillsLine) value = "";
      }
      value += decoder.write(chunk.subarray(from));
    };
    const onEnd = () => finish({ end: "cancelled" });
    const onError = (error: Error) => finish({ end: "failed", error });
    input.on("data", onData);
    input.once("end", onEnd);
    input.once("error", onError);
    output.write(prompts[0]);
    input.resume();
  });
}
