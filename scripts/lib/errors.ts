// Errors that carry the exit code the CLI contract promises: 2 for bad usage or a missing
// program/environment, 1 for a step that failed. One top-level handler (lib/cli.ts) prints them.

export class RdpfixError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2, readonly hint?: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input from the user: exit 2, nothing was run. */
export class UsageError extends RdpfixError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}

/** The environment cannot do what was asked (missing program, wrong OS, not elevated): exit 2. */
export class EnvError extends RdpfixError {
  constructor(message: string, hint?: string) {
    super(message, 2, hint);
  }
}

/** A step ran and failed: exit 1. */
export class StepError extends RdpfixError {
  constructor(message: string, hint?: string) {
    super(message, 1, hint);
  }
}
