// The fast path (./rdpfix NAME, running dist/NAME.mjs built by tools/build.mjs) cannot drift from
// the source: every script answers `--help` through it with the same text and exit code as through
// tsx, and generates the same PowerShell (--emit: the .ps1 files built into the bundle, also from a
// copy of the bundle alone); an unknown name exits 2 naming it; a bundle older than its sources or
// missing is rebuilt (with a note on stderr) before it runs, never run stale.
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));
const rdpfix = join(root, 'rdpfix');
const names = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[], cwd = root): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { cwd, env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const viaRdpfix = (args: string[]) => run([rdpfix, ...args]);
const viaTsx = (name: string, args: string[]) => run(['--import', 'tsx', join(root, 'scripts', `${name}.ts`), ...args]);

// Build once up front (what `npm ci` does through `prepare`), so the comparisons below run bundles.
const built = await run([join(root, 'tools', 'build.mjs')]);

const t = suite('rdpfix');

t('tools/build.mjs builds a bundle for every script', () => {
  assert.is(built.code, 0, built.stderr);
  assert.match(built.stderr, `built ${names.length} bundles`);
  for (const n of names) assert.ok(statSync(join(root, 'dist', `${n}.mjs`)).size > 0, n);
  for (const n of names) assert.ok(JSON.parse(readFileSync(join(root, 'dist', `${n}.inputs.json`), 'utf8')).includes(`scripts/${n}.ts`), `${n}: its inputs list names its source`);
});

t('every script: `rdpfix NAME --help` prints what `tsx scripts/NAME.ts --help` prints, with the same exit code', async () => {
  const diffs: string[] = [];
  // Two at a time: the machine is shared.
  for (let i = 0; i < names.length; i += 2) {
    await Promise.all(
      names.slice(i, i + 2).map(async (n) => {
        const [fast, src] = await Promise.all([viaRdpfix([n, '--help']), viaTsx(n, ['--help'])]);
        if (fast.code !== src.code) diffs.push(`${n}: exit ${fast.code} (rdpfix) vs ${src.code} (tsx)`);
        if (fast.stdout !== src.stdout) diffs.push(`${n}: --help text differs`);
        if (fast.stderr !== '') diffs.push(`${n}: rdpfix wrote to stderr: ${fast.stderr.trim()}`);
        if (!src.stdout.includes('Exit codes:')) diffs.push(`${n}: the source's --help has no exit codes`);
      }),
    );
  }
  assert.equal(diffs, []);
});

// Every script that generates PowerShell with --emit alone (no target needed).
const EMITTERS = ['clear-machinekeys', 'diagnose', 'disable-rdp-udp', 'inspect-server', 'restart-termserv', 'toggle-nla'];

t('--emit: the same PowerShell through rdpfix, and from a copy of the bundle alone (the .ps1 files are built in)', async () => {
  const alone = mkdtempSync(join(tmpdir(), 'rdpfix-bundle-'));
  try {
    for (const n of EMITTERS) {
      copyFileSync(join(root, 'dist', `${n}.mjs`), join(alone, `${n}.mjs`));
      const [fast, src, copy] = await Promise.all([viaRdpfix([n, '--emit']), viaTsx(n, ['--emit']), run([join(alone, `${n}.mjs`), '--emit'], alone)]);
      assert.is(src.code, 0, `${n}: ${src.stderr}`);
      assert.match(src.stdout, 'Assert-RdpHost', n);
      assert.is(fast.code, src.code, n);
      assert.is(fast.stdout, src.stdout, `${n} through rdpfix`);
      assert.is(copy.code, src.code, `${n} copied: ${copy.stderr}`);
      assert.is(copy.stdout, src.stdout, `${n} copied alone`);
    }
  } finally {
    rmSync(alone, { recursive: true, force: true });
  }
});

t('an unknown NAME exits 2 naming it; no NAME exits 2 with the usage and the script list', async () => {
  const r = await viaRdpfix(['no-such-script', '--help']);
  assert.is(r.code, 2);
  assert.is(r.stdout, '');
  assert.match(r.stderr, 'unknown script "no-such-script"');
  assert.match(r.stderr, 'probe-rdp');
  const lib = await viaRdpfix(['lib/cli', '--help']);
  assert.is(lib.code, 2);
  assert.match(lib.stderr, 'unknown script "lib/cli"');
  const none = await viaRdpfix([]);
  assert.is(none.code, 2);
  assert.match(none.stderr, 'usage: rdpfix NAME');
  for (const n of names) assert.match(none.stderr, n);
});

t('a bundle older than a source, or missing, is rebuilt with a note before it runs (never run stale)', async () => {
  const bundle = join(root, 'dist', 'probe-rdp.mjs');
  const want = (await viaTsx('probe-rdp', ['--help'])).stdout;
  utimesSync(bundle, new Date(0), new Date(0));
  const old = await viaRdpfix(['probe-rdp', '--help']);
  assert.is(old.code, 0);
  assert.match(old.stderr, /rdpfix: \S+ is newer than dist\/probe-rdp\.mjs: rebuilt/);
  assert.is(old.stdout, want);
  assert.ok(statSync(bundle).mtimeMs > 0);
  const again = await viaRdpfix(['probe-rdp', '--help']);
  assert.is(again.stderr, '', 'a fresh bundle runs without a note');
  rmSync(bundle);
  const gone = await viaRdpfix(['probe-rdp', '--help']);
  assert.is(gone.code, 0);
  assert.match(gone.stderr, 'rdpfix: dist/probe-rdp.mjs is missing: rebuilt');
  assert.is(gone.stdout, want);
});

t('start runs diagnose: a stale diagnose bundle is rebuilt for it too', async () => {
  utimesSync(join(root, 'dist', 'diagnose.mjs'), new Date(0), new Date(0));
  // diagnose's own usage error (exit 2, kept by start) proves the diagnose bundle ran, with no network.
  const r = await viaRdpfix(['start', '--parallel', 'abc']);
  assert.is(r.code, 2);
  assert.match(r.stderr, 'newer than dist/diagnose.mjs: rebuilt');
  assert.match(r.stderr, '"abc"');
  const tsx = await viaTsx('start', ['--parallel', 'abc']);
  assert.is(tsx.code, 2);
  assert.is(r.stderr.slice(r.stderr.indexOf('rebuilt (')).replace(/^rebuilt \(\d+ ms\)\n/, ''), tsx.stderr);
});

t('run-recipe through rdpfix, from another folder, runs its steps\' bundles: the same composite as through tsx', async () => {
  const elsewhere = mkdtempSync(join(tmpdir(), 'rdpfix-cwd-'));
  try {
    const args = ['run-recipe', 'azure-vm-cert', '--host', '10.0.0.4', '--emit'];
    const [fast, src] = await Promise.all([run([rdpfix, ...args], elsewhere), run(['--import', import.meta.resolve('tsx'), join(root, 'scripts', 'run-recipe.ts'), ...args.slice(1)], elsewhere)]);
    assert.is(src.code, 0, src.stderr);
    assert.match(src.stdout, 'Assert-RdpHost');
    assert.is(fast.code, 0, fast.stderr);
    assert.is(fast.stdout, src.stdout);
    assert.is(fast.stderr, src.stderr);
  } finally {
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

t('a stale bundle that cannot be rebuilt runs its source through the checkout\'s tsx, from any folder', async () => {
  // A copy of the checkout without tools/ (so no rebuild), with its node_modules linked.
  const copy = mkdtempSync(join(tmpdir(), 'rdpfix-copy-'));
  const elsewhere = mkdtempSync(join(tmpdir(), 'rdpfix-cwd-'));
  try {
    for (const d of ['scripts', 'dist']) cpSync(join(root, d), join(copy, d), { recursive: true });
    copyFileSync(rdpfix, join(copy, 'rdpfix'));
    copyFileSync(join(root, 'package.json'), join(copy, 'package.json'));
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
    utimesSync(join(copy, 'dist', 'probe-rdp.mjs'), new Date(0), new Date(0));
    const r = await run([join(copy, 'rdpfix'), 'probe-rdp', '--help'], elsewhere);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, 'rebuilding failed');
    assert.match(r.stderr, 'running scripts/probe-rdp.ts through tsx');
    assert.is(r.stdout, (await viaTsx('probe-rdp', ['--help'])).stdout);
  } finally {
    rmSync(copy, { recursive: true, force: true });
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

t('two stale bundles rebuilt at once by two runs both end current: each keeps its own inputs list', async () => {
  for (const n of ['probe-rdp', 'toggle-nla']) utimesSync(join(root, 'dist', `${n}.mjs`), new Date(0), new Date(0));
  rmSync(join(root, 'dist', 'toggle-nla.inputs.json'));
  const both = await Promise.all([viaRdpfix(['probe-rdp', '--help']), viaRdpfix(['toggle-nla', '--help'])]);
  assert.equal(both.map((r) => r.code), [0, 0]);
  assert.match(both[0]!.stderr, 'newer than dist/probe-rdp.mjs: rebuilt');
  assert.match(both[1]!.stderr, 'dist/toggle-nla.inputs.json is missing or unreadable: rebuilt');
  const again = await Promise.all([viaRdpfix(['probe-rdp', '--help']), viaRdpfix(['toggle-nla', '--help'])]);
  assert.equal(again.map((r) => r.stderr), ['', ''], 'both current: no rebuild');
});

t('--rebuild-stale NAME... rebuilds only the stale bundles, once, and is silent when all are current (for a fleet\'s steps)', async () => {
  const quiet = await viaRdpfix(['--rebuild-stale', 'probe-rdp', 'toggle-nla']);
  assert.equal([quiet.code, quiet.stdout, quiet.stderr], [0, '', '']);
  utimesSync(join(root, 'dist', 'toggle-nla.mjs'), new Date(0), new Date(0));
  const before = statSync(join(root, 'dist', 'probe-rdp.mjs')).mtimeMs;
  const r = await viaRdpfix(['--rebuild-stale', 'probe-rdp', 'toggle-nla']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /newer than dist\/toggle-nla\.mjs: rebuilt/);
  assert.not.match(r.stderr, 'probe-rdp');
  assert.is(statSync(join(root, 'dist', 'probe-rdp.mjs')).mtimeMs, before, 'a current bundle is not rebuilt');
  assert.ok(statSync(join(root, 'dist', 'toggle-nla.mjs')).mtimeMs > 0);
  const bad = await viaRdpfix(['--rebuild-stale', 'probe-rdp', '../x']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, 'unknown script "../x"');
});

t.run();
