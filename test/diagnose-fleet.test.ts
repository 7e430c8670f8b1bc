// diagnose --hosts, the whole process, against this machine's loopback only (ports that refuse, and one
// that accepts and closes at once): one JSON line per host as it finishes; nothing on stderr with
// --json to a pipe; --summary adds one last summary line (docs/json.md); --progress to a pipe writes
// whole progress lines; the human output ends with the count per cause and the slowest hosts.
// The pool and the summary themselves: test/lib/fleet.test.ts. A lab fleet: test/lab/fleet-scale.lab.test.ts.
// Run: npx tsx test/diagnose-fleet.test.ts
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));
const test = suite('diagnose --hosts (loopback)');

interface Line { line?: number; endpoint?: string; cause: string | null; ms?: number; status: string; fleet?: { hosts: number; ok: number; causes: { cause: string; hosts: number }[]; slowest: { endpoint: string; cause: string; ms: number; line: number }[]; perHostMs: { p50: number; p95: number; max: number }; peakRssMb: number; maxOpenFds: number | null } }

let dir = '';
let file = '';
let closer: net.Server | undefined;
const REFUSING = 24;

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'diagnose.ts'), '--hosts', file, ...args], { cwd: root, env: { ...process.env, FORCE_COLOR: '0' }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** A loopback port nothing listens on (listened on, then closed). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-fleet-'));
  const ports: number[] = [];
  for (let i = 0; i < REFUSING; i++) ports.push(await freePort());
  closer = net.createServer((sock) => sock.destroy());
  await new Promise<void>((r) => closer!.listen(0, '127.0.0.1', r));
  const closing = (closer.address() as net.AddressInfo).port;
  file = join(dir, 'hosts.txt');
  writeFileSync(file, ['# loopback fleet', ...ports.map((p) => `127.0.0.1:${p}`), `127.0.0.1:${closing}  # accepts, then closes`].join('\n') + '\n');
});

test.after(() => {
  closer?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('--json to a pipe: one object per host, nothing on stderr, exit 1', async () => {
  const r = await run(['--parallel', '4', '--json', '--samples', '2']);
  assert.is(r.stderr, '');
  assert.is(r.code, 1);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
  assert.is(lines.length, REFUSING + 1);
  assert.ok(lines.every((l) => typeof l.endpoint === 'string' && typeof l.line === 'number' && l.fleet === undefined));
  assert.equal(lines.map((l) => l.line).sort((a, b) => a! - b!), Array.from({ length: REFUSING + 1 }, (_, i) => i + 2));
  assert.is(lines.filter((l) => l.cause === 'no-listener').length, REFUSING);
});

test('--json --summary: the last line is the summary; its counts and slowest hosts are the lines\'', async () => {
  const r = await run(['--parallel', '4', '--json', '--summary', '--slowest', '3', '--samples', '2']);
  assert.is(r.stderr, '');
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
  assert.is(lines.length, REFUSING + 2);
  const last = lines.at(-1)!;
  const hosts = lines.slice(0, -1);
  assert.is(last.endpoint, undefined);
  assert.is(last.cause, null);
  assert.is(last.status, 'failed');
  const f = last.fleet!;
  assert.is(f.hosts, REFUSING + 1);
  assert.is(f.ok, 0);
  const tally = new Map<string, number>();
  for (const h of hosts) tally.set(h.cause!, (tally.get(h.cause!) ?? 0) + 1);
  assert.equal(Object.fromEntries(f.causes.map((c) => [c.cause, c.hosts])), Object.fromEntries(tally));
  assert.is(f.causes[0]!.cause, 'no-listener');
  const byMs = [...hosts].sort((a, b) => b.ms! - a.ms!).slice(0, 3).map((h) => h.ms);
  assert.equal(f.slowest.map((s) => s.ms), byMs);
  for (const s of f.slowest) assert.ok(hosts.some((h) => h.endpoint === s.endpoint && h.line === s.line && h.cause === s.cause && h.ms === s.ms));
  assert.is(f.perHostMs.max, byMs[0]);
  assert.ok(f.peakRssMb > 0);
});

test('--progress to a pipe: whole lines on stderr, the last one "done"; stdout unchanged', async () => {
  const r = await run(['--parallel', '4', '--json', '--progress', '--samples', '2']);
  const progress = r.stderr.trim().split('\n');
  assert.ok(progress.length >= 1);
  for (const l of progress) assert.match(l, /^diagnose: \d+\/25 hosts \(\d+%\), [\d.]+\/s, (ETA \S+|done), \d+ with a problem$/);
  assert.match(progress.at(-1)!, /^diagnose: 25\/25 hosts \(100%\), [\d.]+\/s, done, 25 with a problem$/);
  assert.ok(!r.stderr.includes('\r'));
  assert.is(r.stdout.trim().split('\n').length, REFUSING + 1);
});

test('human output: a line per host, then the count per cause with its recipe and the slowest hosts', async () => {
  const r = await run(['--parallel', '4', '--samples', '2']);
  assert.is(r.stderr, '', 'stderr is a pipe: no progress line');
  assert.is(r.code, 1);
  const out = r.stdout;
  assert.is(out.split('\n').filter((l) => /^✘ 127\.0\.0\.1:\d+/.test(l)).length, REFUSING + 1);
  assert.match(out, /\n25 hosts in [\d.]+ s: 0 healthy, 25 with a problem\n/);
  assert.match(out, new RegExp(`\\n  ${REFUSING}  no-listener +recipe service-down\\n`));
  assert.match(out, /\nSlowest 5 hosts:\n( +\d+ ms  127\.0\.0\.1:\d+ \(line \d+\)  [a-z-]+\n){5}per host p50 \d+ ms, p95 \d+ ms; peak RSS \d+ MB/);
});

test('--summary, --progress or --slowest without --hosts is bad usage (exit 2), nothing probed', async () => {
  for (const flag of ['--summary', '--progress', '--slowest=3']) {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'diagnose.ts'), '127.0.0.1:1', flag], { cwd: root, env: { ...process.env, FORCE_COLOR: '0' }, timeout: 60_000 }, (err, _out, stderr) => {
        resolve({ code: err && typeof err.code === 'number' ? err.code : 0, stderr });
      });
    });
    assert.is(r.code, 2, flag);
    assert.match(r.stderr, new RegExp(`${flag.replace(/=.*/, '')} is for a fleet run \\(--hosts FILE\\)`));
  }
});

test.run();
