// The CLI plumbing every script shares: the main guard, a yargs factory with the common options,
// and one top-level error handler that maps errors to the exit-code contract
// (0 ok, 1 problem found or step failed, 2 bad usage or environment).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { RdpfixError, UsageError } from './errors.ts';
import { chalk } from './output.ts';

const stripExt = (p: string) => p.replace(/\.[cm]?[jt]s$/, '');

/**
 * True when the module at `metaUrl` is the program being run. `import.meta.main` is undefined on
 * Node 20 (a bare import.meta.main check silently does nothing), so compare real paths as zx does.
 */
export function isMain(metaUrl: string): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  try {
    return stripExt(realpathSync(argv1)) === stripExt(realpathSync(fileURLToPath(metaUrl)));
  } catch {
    return false;
  }
}

/** A yargs parser for one script: strict, with --help, usage errors thrown as UsageError. */
export function makeCli(argv: string[], script: string): Argv {
  return yargs(argv)
    .scriptName(`npx tsx scripts/${script}.ts`)
    .strict()
    .version(false)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    });
}

export interface CommonFlags {
  json: boolean;
}

/**
 * Run a CLI main. `main` returns the exit code; thrown RdpfixErrors become their own exit codes
 * (with --json, one JSON error document on stdout), anything else is a crash reported as exit 1.
 */
export async function runCli(main: (argv: string[]) => Promise<number>, argv = process.argv.slice(2)): Promise<never> {
  // `... | head` closes the pipe early: that is the reader's choice, not an error of ours.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
  });
  let code: number;
  try {
    code = await main(argv);
  } catch (e) {
    const json = argv.includes('--json');
    const err = e instanceof RdpfixError ? e : null;
    code = err ? err.exitCode : 1;
    const message = e instanceof Error ? e.message : String(e);
    if (json) {
      process.stdout.write(JSON.stringify({ status: 'failed', error: message, hint: err?.hint ?? null, exitCode: code }) + '\n');
    } else {
      process.stderr.write(chalk.red(`error: ${message}`) + '\n');
      if (err?.hint) process.stderr.write(`  ${err.hint}\n`);
      if (!err && e instanceof Error && process.env.RDPFIX_DEBUG) process.stderr.write(`${e.stack}\n`);
    }
  }
  // Let stdout drain before exiting (piped output would otherwise be cut off).
  await new Promise<void>((r) => (process.stdout.write('') ? r() : process.stdout.once('drain', () => r())));
  process.exit(code);
}
