// `npm start`: the main job for a new user — diagnose 127.0.0.1:3389 (or the host given after
// `--`), print what was found, and exit 0 whatever the finding (the scripts run directly keep the
// 0/1/2 exit-code contract). diagnose.ts runs as its own process (no script imports another), with
// this process's terminal and the same Node.js flags (the tsx loader). `--help` is start's own and
// needs no second process: the options are diagnose's, and `diagnose --help` lists them.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMain, optionTokens, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';

/** start's --help: what it does, where diagnose's options are, the scripts, the exit codes. */
export function startHelp(scripts: string[]): string {
  return `start.ts [HOST[:PORT]] [diagnose options]

What \`npm start\` runs: diagnose HOST (default 127.0.0.1:3389) with the options given, print what
was found, and exit 0 whatever it found. rdpfix finds and fixes Remote Desktop error 0x904
(extended error 0x7: the socket was closed during connection setup): a broken or unreadable RDP
certificate or key on the server, a security-layer or NLA mismatch between client and server, and
network paths that drop large packets or lose too many.

Every option is diagnose's (./rdpfix diagnose --help lists them). The scripts run directly keep the
exit-code contract; each runs alone: ./rdpfix NAME --help, or npx tsx scripts/NAME.ts --help.
Scripts:
${wrap(scripts.join(', '), 98).map((l) => `  ${l}`).join('\n')}

Examples:
  npm start
  npm start -- 10.0.0.4 --json
  ./rdpfix start vm1.contoso.com

Exit codes: 0 diagnose ran (whatever it found), 1 diagnose was stopped by a signal, 2 bad usage or
environment.
`;
}

/** Words of `text` in lines of at most `width` columns. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(' ')) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last]!.length + 1 + word.length <= width) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

/** --help or -h before any `--`: the user asks for start's help, not a diagnosis. */
const asksHelp = (argv: string[]) => optionTokens(argv).some((a) => a === '--help' || a === '-h');

export async function main(argv: string[]): Promise<number> {
  const dir = fileURLToPath(new URL('.', import.meta.url));
  if (asksHelp(argv)) {
    // From the source, scripts/*.ts; from the fast path, dist/*.mjs: the same names either way.
    const scripts = readdirSync(dir).filter((f) => /\.(ts|mjs)$/.test(f)).map((f) => f.replace(/\.(ts|mjs)$/, '')).filter((n) => n !== 'start').sort();
    process.stdout.write(startHelp(scripts));
    return 0;
  }
  // From the source: scripts/diagnose.ts with this process's tsx loader; from the fast path
  // (dist/start.mjs, tools/build.mjs): the bundle dist/diagnose.mjs next to it, no loader needed.
  const diagnosePath = ['./diagnose.ts', './diagnose.mjs'].map((f) => fileURLToPath(new URL(f, import.meta.url))).find((p) => existsSync(p));
  if (!diagnosePath) throw new UsageError(`diagnose is missing next to start (${dir}): reinstall, or run npm ci`);
  const code = await runNode([...process.execArgv, diagnosePath, ...argv]);
  // Bad usage is still bad usage; a finding (1) is a successful report for npm start.
  return code === 2 ? 2 : code === null ? 1 : 0;
}

/** Node.js with these arguments on this terminal; its exit code, or null when a signal ended it. */
function runNode(args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

if (isMain(import.meta.url)) await runCli(main);
