// Reading a password: one line from stdin (--password-stdin), or typed at the terminal without echo.

import { createInterface } from "node:readline";

/** Reads the first line of stdin, without its line end. */
export async function readStdinLine(): Promise<string> {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  try {
    for await (const line of rl) return line.replace(/\r$/, "");
    return "";
  } finally {
    rl.close();
  }
}

/** Ctrl-C at a prompt: the command is given up, as a shell reports a program stopped by SIGINT (exit 130). */
export class PromptInterrupted extends Error {
  constructor() {
    super("cancelled");
    this.name = "PromptInterrupted";
  }
}

/**
 * What followed the line end (or the Ctrl-D) in the input that ended the last prompt's line: a line typed ahead, or
 * pasted with the first ("secret\rsecret\r" comes in one read), is the answer to the next prompt, not lost.
 */
let typedAhead = "";

/**
 * The last line ended with a CR and nothing has been read since: an LF that comes next, in the same read or the next
 * one (a terminal sending CR LF), belongs to that line end and is not an empty line of its own.
 */
let afterCr = false;

/**
 * Asks each prompt in turn on the terminal and reads its answer with echo off. The terminal is in raw mode (no echo)
 * from before the first prompt shows until the last answer is read, so nothing typed in between is echoed, and its
 * mode is restored however the prompts end. Enter (CR, LF, or CR LF, even split across reads) ends an answer, as does
 * Ctrl-D after some characters; Ctrl-D on an empty line cancels, Ctrl-C gives up (PromptInterrupted), Backspace or
 * DEL takes a character back. Needs stdin to be a TTY.
 */
export function promptHiddenLines(prompts: readonly string[]): Promise<string[]> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return Promise.reject(new Error("no terminal to prompt on; use --password-stdin"));
  return new Promise((resolve, reject) => {
    const wasRaw = stdin.isRaw;
    const answers: string[] = [];
    let value = "";
    let finished = false;
    const finish = (err: Error | null) => {
      if (finished) return;
      finished = true;
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      stdin.off("error", onError);
      stdin.pause();
      try {
        stdin.setRawMode(wasRaw);
      } catch {
        // The terminal is gone; there is no mode to restore.
      }
      if (err) {
        process.stderr.write("\n");
        reject(err);
      } else resolve(answers);
    };
    /** Ends the answer being typed; true once every prompt is answered. */
    const endLine = (): boolean => {
      answers.push(value);
      value = "";
      process.stderr.write("\n");
      if (answers.length === prompts.length) return true;
      process.stderr.write(prompts[answers.length]!);
      return false;
    };
    const onData = (chunk: string) => {
      const chars = Array.from(chunk);
      for (const [i, ch] of chars.entries()) {
        const lfOfCrLf = afterCr && ch === "\n";
        afterCr = false;
        if (lfOfCrLf) continue;
        if (ch === "\r" || ch === "\n" || ch === "\u0004") {
          if (ch === "\u0004" && value.length === 0) return finish(new Error("cancelled"));
          // Ctrl-D after some characters ends the line as Enter does.
          afterCr = ch === "\r";
          if (endLine()) {
            typedAhead = chars.slice(i + 1).join("");
            return finish(null);
          }
          continue;
        }
        if (ch === "\u0003") return finish(new PromptInterrupted());
        if (ch === "\u007f" || ch === "\b") value = Array.from(value).slice(0, -1).join("");
        else if (ch >= " ") value += ch;
      }
    };
    const onEnd = () => finish(new Error("cancelled"));
    const onError = (err: Error) => finish(err);
    try {
      // Raw mode first: the prompt shows only once typing is not echoed.
      stdin.setRawMode(true);
      stdin.setEncoding("utf8");
      stdin.on("data", onData);
      stdin.once("end", onEnd);
      stdin.once("error", onError);
      process.stderr.write(prompts[0] ?? "");
      if (prompts.length === 0) return finish(null);
      if (typedAhead !== "") {
        const ahead = typedAhead;
        typedAhead = "";
        onData(ahead);
      }
      if (!finished) stdin.resume();
    } catch (err) {
      finish(err as Error);
    }
  });
}
