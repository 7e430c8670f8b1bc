// start (what `npm start` runs) passes everything to diagnose as its own process and turns a finding
// into exit 0, keeping bad usage (2); its --help is its own and runs no second process. The exit
// mapping is checked against a stand-in diagnose next to a copy of the start bundle, so no test
// traffic is needed: the stand-in records its arguments and exits as it is told.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));
const names = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts') && f !== 'start.ts').map((f) => f.slice(0, -3)).sort();
const tsx = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'start.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

const t = suite('start');

t('--help is start\'s own: what it does, every script, the exit codes; diagnose is not run', () => {
  const r = tsx(['--help']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(r.stdout.startsWith('start.ts [HOST[:PORT]] [diagnose options]\n'), r.stdout);
  assert.match(r.stdout, 'default 127.0.0.1:3389');
  assert.match(r.stdout, /Exit codes: 0 /);
  const listed = r.stdout.split('Scripts:\n')[1]!.split('\n\n')[0]!.replace(/\s+/g, ' ').trim().split(', ');
  assert.equal(listed, names);
  assert.not.match(r.stdout, 'diagnose.ts [', 'not diagnose\'s usage');
  assert.is(tsx(['10.0.0.4', '-h']).stdout, r.stdout);
});

t('after --, "--help" is diagnose\'s to read: a host it rejects, naming it (exit 2)', () => {
  const r = tsx(['--', '--help']);
  assert.is(r.status, 2, r.stdout);
  assert.match(r.stderr, '"--help"');
  assert.is(r.stdout, '');
});

// The fast path's start (dist/start.mjs) finds diagnose.mjs next to itself.
const dir = mkdtempSync(join(tmpdir(), 'rdpfix-start-'));
const bundle = join(root, 'dist', 'start.mjs');
const built = spawnSync(process.execPath, [join(root, 'tools', 'build.mjs'), 'start'], { encoding: 'utf8' });
copyFileSync(bundle, join(dir, 'start.mjs'));
writeFileSync(join(dir, 'diagnose.mjs'), `import { writeFileSync } from 'node:fs';
writeFileSync(new URL('./args.json', import.meta.url), JSON.stringify(process.argv.slice(2)));
const code = Number(process.env.STAND_IN_EXIT);
if (code < 0) process.kill(process.pid, 'SIGTERM');
process.exit(code);
`);
const viaBundle = (args: string[], exit: number) => spawnSync(process.execPath, [join(dir, 'start.mjs'), ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, STAND_IN_EXIT: String(exit) } });

t('every argument reaches diagnose as given, in order', () => {
  assert.is(built.status, 0, built.stderr);
  const args = ['vm1', '--json', '--', '--help', '$(whoami)'];
  assert.is(viaBundle(args, 0).status, 0);
  assert.equal(JSON.parse(readFileSync(join(dir, 'args.json'), 'utf8')), args);
});

t('a finding (1) is exit 0, bad usage (2) stays 2, a diagnose ended by a signal is 1', () => {
  assert.is(viaBundle(['vm1'], 1).status, 0);
  assert.is(viaBundle(['vm1'], 2).status, 2);
  assert.is(viaBundle(['vm1'], 0).status, 0);
  assert.is(viaBundle(['vm1'], -1).status, 1);
});

t('without diagnose next to it, start says so and exits 2', () => {
  rmSync(join(dir, 'diagnose.mjs'));
  const r = viaBundle(['vm1'], 0);
  assert.is(r.status, 2);
  assert.match(r.stderr, 'diagnose is missing next to start');
});

t.after(() => rmSync(dir, { recursive: true, force: true }));
t.run();
