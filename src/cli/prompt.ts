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

/** Prompts on the terminal and reads a line with echo off. Needs stdin to be a TTY. */
export function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return Promise.reject(new Error("no terminal to prompt on; use --password-stdin"));
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    let value = "";
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (err: Error | null) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      const chars = Array.from(chunk);
      for (const [i, ch] of chars.entries()) {
        if (ch === "\r" || ch === "\n") {
          const rest = chars.slice(i + 1).join("");
          typedAhead = ch === "\r" && rest.startsWith("\n") ? rest.slice(1) : rest;
          return done(null);
        }
        if (ch === "\u0003") return done(new PromptInterrupted());
        if (ch === "\u0004") {
          if (value.length === 0) return done(new Error("cancelled"));
          // Ends the line as Enter does: what follows is typed ahead too.
          typedAhead = chars.slice(i + 1).join("");
          return done(null);
        }
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else if (ch >= " ") value += ch;
      }
    };
    stdin.on("data", onData);
    if (typedAhead !== "") {
      const ahead = typedAhead;
      typedAhead = "";
      onData(ahead);
    }
  });
}
