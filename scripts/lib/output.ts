// Human and machine output. Human: a short verdict first, then evidence, colour when the terminal
// supports it, a spinner only while waiting on a TTY. Machine (--json): one JSON document on stdout.
// Colour without loading all of zx at start-up (start-up time is part of a diagnosis): the seven
// styles the scripts use, on when stdout is a terminal (FORCE_COLOR / NO_COLOR decide otherwise).
function colourOn(): boolean {
  if (process.env.NO_COLOR) return false;
  if (process.env.FORCE_COLOR !== undefined) return process.env.FORCE_COLOR !== '0';
  return Boolean(process.stdout.isTTY);
}
const style = (open: number, close: number) => (text: string | number) =>
  colourOn() ? `\x1b[${open}m${text}\x1b[${close}m` : String(text);

export const chalk = {
  bold: style(1, 22),
  dim: style(2, 22),
  red: style(31, 39),
  green: style(32, 39),
  yellow: style(33, 39),
  cyan: style(36, 39),
  gray: style(90, 39),
};

export type Status = 'ok' | 'changed' | 'would-change' | 'failed' | 'skipped';

export function statusWord(s: Status | string): string {
  switch (s) {
    case 'ok':
      return chalk.green(s);
    case 'changed':
      return chalk.yellow(s);
    case 'would-change':
      return chalk.cyan(s);
    case 'failed':
      return chalk.red(s);
    default:
      return chalk.gray(s);
  }
}

export function printJson(doc: unknown): void {
  process.stdout.write(JSON.stringify(doc) + '\n');
}

/** Verdict line, then indented evidence lines, then an optional "next" command. */
export function printHuman(verdict: string, evidence: string[] = [], next?: string[]): void {
  const lines = [verdict, ...evidence.map((e) => `  ${chalk.dim('•')} ${e}`)];
  if (next?.length) lines.push('', chalk.bold('Next:'), ...next.map((n) => `  ${n}`));
  process.stdout.write(lines.join('\n') + '\n');
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * Show a spinner on stderr while `work` runs — only on an interactive terminal and never with
 * --json, so piped and machine output stay clean.
 */
export async function withSpinner<T>(title: string, work: () => Promise<T>, enabled = true): Promise<T> {
  if (!enabled || !process.stderr.isTTY || process.env.CI) return work();
  let i = 0;
  const timer = setInterval(() => process.stderr.write(`\r${chalk.cyan(FRAMES[i++ % FRAMES.length])} ${title}`), 80);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    process.stderr.write(`\r\x1b[K`);
  }
}

/**
 * Ask y/N on the terminal before changing state. Without a terminal there is nobody to ask: that
 * is bad usage (exit 2), with `refusal` saying which flag to pass instead.
 */
export async function confirm(question: string, refusal: string): Promise<boolean> {
  const { UsageError } = await import('./errors.ts');
  if (!process.stdin.isTTY) throw new UsageError(refusal);
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
