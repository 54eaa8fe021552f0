// Reading a password: one line from stdin (--password-stdin), or typed at the terminal without echo.

import { createInterface } from "node:readline";
import { readHiddenLines } from "../core/hidden-lines.js";

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
 * Asks each prompt in turn on the terminal and reads its answer with echo off, which stays off from before the first
 * prompt shows until the last answer is read (see readHiddenLines): a repeat typed ahead, or pasted with the password
 * ("secret\rsecret\r" comes in one read), answers the second prompt. Ctrl-D after some characters ends an answer as
 * Enter does, as it would at a terminal's own prompt; Ctrl-D on an empty line cancels, Ctrl-C gives up
 * (PromptInterrupted). Needs stdin to be a TTY.
 */
export async function promptHiddenLines(prompts: readonly [string, ...string[]]): Promise<string[]> {
  if (!process.stdin.isTTY) throw new Error("no terminal to prompt on; use --password-stdin");
  const read = await readHiddenLines(process.stdin, process.stderr, prompts, { ctrlDEndsLine: true, ctrlUKillsLine: false });
  switch (read.end) {
    case "answered":
      return read.answers;
    case "interrupted":
      throw new PromptInterrupted();
    case "cancelled":
      throw new Error("cancelled");
    case "failed":
      throw read.error;
  }
}
