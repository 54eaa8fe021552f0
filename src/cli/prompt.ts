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
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return done(null);
        if (ch === "\u0003") return done(new PromptInterrupted());
        if (ch === "\u0004") return done(value.length > 0 ? null : new Error("cancelled"));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else if (ch >= " ") value += ch;
      }
    };
    stdin.on("data", onData);
  });
}
