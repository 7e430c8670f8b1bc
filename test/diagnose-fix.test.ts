// diagnose --fix: the cause found picks the recipe, which runs through the runner. The diagnosis is
// real (a refused port on loopback); the recipe's steps are scripted stand-ins, as in
// test/run-recipe.test.ts, so nothing Windows-side is pretended.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const fix = suite('diagnose --fix');

fix('a refused port picks service-down and runs it through the runner (JSON lines: diagnosis, then the run)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-fix-'));
  try {
    mkdirSync(join(dir, 'scripts'));
    for (const s of ['inspect-server', 'restart-termserv', 'probe-rdp']) symlinkSync(join(root, 'test/fixtures/run-recipe/fake-step.ts'), join(dir, 'scripts', `${s}.ts`));
    writeFileSync(join(dir, 'plan.json'), JSON.stringify({ 'restart-termserv': [{ json: { status: 'changed' } }], 'probe-rdp': [{ json: { status: 'ok', cause: 'healthy' } }] }));
    const port = await closedPort();
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/diagnose.ts', `127.0.0.1:${port}`, '--fix', '--target', 'winrm://vm1', '--yes', '--json', '--samples', '1'], {
      cwd: root, encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, RDPFIX_SCRIPTS_DIR: join(dir, 'scripts'), RDPFIX_JOURNAL: join(dir, 'journal'), FAKE_LOG: join(dir, 'log'), FAKE_PLAN: join(dir, 'plan.json'), RDPFIX_RUN_ID: '' },
    });
    const [diag, run] = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.is(diag.cause, 'no-listener');
    assert.is(run.recipe, 'service-down');
    assert.is(run.result, 'completed');
    assert.is(r.status, 0, r.stderr);
    const calls = readFileSync(join(dir, 'log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).name);
    assert.equal(calls, ['inspect-server', 'restart-termserv', 'probe-rdp']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

fix('--fix with --hosts, or with a hostile --target, is bad usage (exit 2) before anything is probed', async () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/diagnose.ts', '--hosts', 'x.txt', '--fix'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 2);
  assert.match(r.stderr, /--fix works on one host/);
  const bad = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/diagnose.ts', '127.0.0.1:1', '--fix', '--target', "winrm://a'b"], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.is(bad.status, 2);
});

fix.run();
