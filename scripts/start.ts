// `npm start`: the main job for a new user — diagnose 127.0.0.1:3389 (or the host given after
// `--`), print what was found, and exit 0 whatever the finding (the scripts run directly keep the
// 0/1/2 exit-code contract). diagnose.ts runs as its own process (no script imports another), with
// this process's terminal and the same Node.js flags (the tsx loader). Until diagnose.ts exists it
// explains what the toolkit does.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMain, runCli } from './lib/cli.ts';

const ABOUT = `rdpfix — find and fix Remote Desktop error 0x904 (extended error 0x7: the socket was closed
during connection setup).

Causes it looks for: a broken or unreadable RDP certificate/key on the server, a security-layer or
NLA mismatch between client and server, and network paths that drop large packets or lose too many.

Scripts (each runs alone: npx tsx scripts/NAME.ts --help):`;

export async function main(argv: string[]): Promise<number> {
  // From the source: scripts/diagnose.ts with this process's tsx loader; from the fast path
  // (dist/start.mjs, tools/build.mjs): the bundle dist/diagnose.mjs next to it, no loader needed.
  const diagnosePath = ['./diagnose.ts', './diagnose.mjs'].map((f) => fileURLToPath(new URL(f, import.meta.url))).find((p) => existsSync(p));
  if (diagnosePath) {
    const code = await runNode([...process.execArgv, diagnosePath, ...argv]);
    // Bad usage is still bad usage; a finding (1) is a successful report for npm start.
    return code === 2 ? 2 : code === null ? 1 : 0;
  }
  const dir = fileURLToPath(new URL('.', import.meta.url));
  const scripts = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'start.ts');
  process.stdout.write(`${ABOUT}\n${scripts.map((s) => `  ${s}`).join('\n') || '  (none yet)'}\n`);
  return 0;
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
