// The CLI plumbing every script shares: the main guard, a yargs factory with the common options,
// and one top-level error handler that maps errors to the exit-code contract
// (0 ok, 1 problem found or step failed, 2 bad usage or environment).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { RdpfixError, UsageError } from './errors.ts';
import { chalk } from './output.ts';
import { report } from './report.ts';

const stripExt = (p: string) => p.replace(/\.[cm]?[jt]s$/, '');

/** The real path of what the user named: tsx also runs `scripts/diagnose` for `scripts/diagnose.ts`. */
function realScriptPath(p: string): string | null {
  for (const candidate of [p, `${p}.ts`, `${p}.mts`, `${p}.js`, `${p}.mjs`]) {
    try {
      return realpathSync(candidate);
    } catch {
      // try the next spelling
    }
  }
  return null;
}

/**
 * True when the module at `metaUrl` is the program being run. `import.meta.main` is undefined on
 * Node 20 (a bare import.meta.main check silently does nothing), so compare real paths as zx does,
 * whether the path was given with or without its extension, relative, or through a symlink.
 */
export function isMain(metaUrl: string): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  const given = realScriptPath(argv1);
  if (!given) return false;
  try {
    return stripExt(given) === stripExt(realpathSync(fileURLToPath(metaUrl)));
  } catch {
    return false;
  }
}

/** The command-line tokens that are options or their values: everything before a `--`. */
export function optionTokens(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return end < 0 ? argv : argv.slice(0, end);
}

/** --emit prints PowerShell to paste: with --json as well, the user asked for two outputs at once. */
export function refuseEmitJson(emit: boolean, json: boolean): void {
  if (emit && json) throw new UsageError('--emit prints a PowerShell script to paste, not JSON: leave out --json');
}

/** Every script's help ends with the contract. */
export const EXIT_CODES = 'Exit codes: 0 ok, 1 problem found or step failed, 2 bad usage or environment.';

/** Help is never narrower than this: example commands stay one copy-pasteable line each. */
const HELP_WIDTH = 80;

/**
 * The raw text given for option `key` (the last occurrence, as yargs keeps the last), or
 * undefined. Used to name what the user typed when yargs has already coerced it.
 */
function rawOption(argv: string[], key: string): string | undefined {
  let raw: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === `--${key}`) raw = argv[i + 1] ?? '';
    else if (a.startsWith(`--${key}=`)) raw = a.slice(key.length + 3);
  }
  return raw;
}

/**
 * Turn yargs's "Unknown argument" for a token that followed an option taking a value into what
 * happened: the value started with "-" and was read as an option. After a yes/no flag, an unknown
 * token is just unknown. Names the token exactly as typed (never yargs's camelCase copy of it).
 */
function explainUnknown(msg: string, argv: string[], booleans: ReadonlySet<string>): string {
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (!m) return msg;
  const camel = (k: string) => k.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const listed = m[1]!.split(', ');
  // yargs names a mistyped --foo-bar twice: foo-bar, and fooBar.
  const unknown = listed.filter((u) => !listed.some((o) => o !== u && o.includes('-') && camel(o) === u));
  for (let i = 1; i < argv.length; i++) {
    const tok = argv[i]!;
    const prev = argv[i - 1]!;
    if (!tok.startsWith('-') || !/^--[a-z][a-z0-9-]*$/i.test(prev)) continue;
    if (booleans.has(prev.slice(2)) || booleans.has(prev.slice(2).replace(/^no-/, ''))) continue;
    const bare = tok.replace(/^-+/, '').replace(/=.*$/, '');
    if (!unknown.includes(bare)) continue;
    return `${prev} got no value: ${JSON.stringify(tok)} was read as an option (to pass a value that starts with "-", write ${prev}=${tok})`;
  }
  const named = unknown.map((u) => argv.find((a) => a.replace(/^-+/, '').replace(/=.*$/, '') === u) ?? u);
  return `unknown argument${named.length > 1 ? 's' : ''}: ${named.map((n) => JSON.stringify(n)).join(', ')}`;
}

/**
 * A yargs parser for one script: strict, with --help, usage errors thrown as UsageError.
 * - Positionals stay strings (`0x7f000001` is not turned into 2130706433) and `-1h` is not the
 *   short options -1 -h: a value can never become `--help`.
 * - A number option given something that is not a number fails naming the text typed.
 * - `.example(cmd, desc)` renders as "# desc" above the command, one line each, and the help
 *   ends with the exit codes.
 */
export function makeCli(argv: string[], script: string): Argv {
  const name = `npx tsx scripts/${script}.ts`;
  // The yes/no options this parser knows (yargs keeps them in its option table).
  const booleanOptions = () => new Set((y as unknown as { getOptions(): { boolean: string[] } }).getOptions().boolean ?? []);
  const y: Argv = yargs(argv)
    .scriptName(name)
    .parserConfiguration({ 'parse-positional-numbers': false, 'short-option-groups': false })
    .strict()
    .version(false)
    .help()
    .alias('h', 'help')
    .wrap(Math.max(HELP_WIDTH, Math.min(110, process.stdout.columns || 110)))
    .middleware((args) => {
      // yargs reads --json=1 or --json=yes as false: a yes/no flag takes only true or false.
      const booleans = booleanOptions();
      for (const a of optionTokens(argv)) {
        const m = /^--(?:no-)?([a-z][a-z0-9-]*)=(.*)$/is.exec(a);
        if (m && booleans.has(m[1]!) && !/^(true|false)$/.test(m[2]!)) {
          const negated = a.startsWith('--no-');
          throw new UsageError(`invalid ${JSON.stringify(a)}: --${m[1]} is a yes/no flag (write ${negated ? `--no-${m[1]}` : `--${m[1]}`}, or --${m[1]}=${negated ? 'false' : 'true'})`);
        }
      }
      for (const key of ((y as unknown as { getOptions(): { number: string[] } }).getOptions().number ?? [])) {
        const v = args[key];
        const raw = rawOption(argv, key);
        const bad = (x: unknown) => typeof x === 'number' && Number.isNaN(x);
        if (bad(v) || (Array.isArray(v) && v.some(bad)) || (raw !== undefined && raw.trim() === '')) {
          throw new UsageError(`invalid --${key} ${JSON.stringify(raw ?? String(v))}: expected a number`);
        }
      }
    }, true)
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(explainUnknown(msg, argv, booleanOptions()));
    });

  const examples: string[] = [];
  let epilog = '';
  const self = y as unknown as Record<'example' | 'epilog' | 'epilogue' | 'parseAsync', unknown>;
  self.example = (cmd: string, desc?: string) => {
    examples.push(`${desc ? `  # ${desc}\n` : ''}  ${cmd.replaceAll('$0', name)}`);
    return y;
  };
  self.epilog = self.epilogue = (text: string) => {
    epilog = text;
    return y;
  };
  // yargs appends every epilogue it is given, so the help's tail is set once, just before parsing.
  const proto = Object.getPrototypeOf(y) as { epilogue(t: string): unknown; parseAsync(...a: unknown[]): Promise<unknown> };
  self.parseAsync = (...a: unknown[]) => {
    const parts = [];
    if (examples.length) parts.push(`Examples:\n${examples.join('\n')}`);
    if (epilog) parts.push(epilog);
    if (!/Exit codes:/.test(epilog)) parts.push(EXIT_CODES);
    proto.epilogue.call(y, parts.join('\n\n'));
    return proto.parseAsync.apply(y, a);
  };
  return y;
}

export interface CommonFlags {
  json: boolean;
}

/**
 * Run a CLI main. `main` returns the exit code; thrown RdpfixErrors become their own exit codes
 * (with --json, one JSON error document on stdout, in the step contract of lib/report.ts), anything else is a crash reported as exit 1.
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
    const json = optionTokens(argv).some((a) => a === '--json' || a === '--json=true');
    const err = e instanceof RdpfixError ? e : null;
    code = err ? err.exitCode : 1;
    const message = e instanceof Error ? e.message : String(e);
    if (json) {
      // The step contract (lib/report.ts): the error is the summary, the hint the note.
      const doc = { ...report({ status: 'failed', summary: message, notes: err?.hint ? [err.hint] : [] }), error: message, hint: err?.hint ?? null, exitCode: code };
      process.stdout.write(JSON.stringify(doc) + '\n');
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
