import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../scripts/lib/channels.ts';
import { lastRun, list, record, type JournalEntry } from '../scripts/lib/journal.ts';
import { RESULT_BEGIN, RESULT_END } from '../scripts/lib/ps.ts';
import type { Runner } from '../scripts/lib/server-step.ts';
import { toggleNla } from '../scripts/toggle-nla.ts';
import { undoEntries, undoEntry } from '../scripts/undo.ts';
import { fakeBin } from './helpers/fakebin.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const nlaFixture = (n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures/toggle-nla', n), 'utf8')) as never;

let dir = '';

function scripted(...answers: unknown[]): Runner & { calls: Array<{ target: string; script: string }> } {
  const calls: Array<{ target: string; script: string }> = [];
  const run = (async (t, script) => {
    calls.push({ target: JSON.stringify(t), script });
    if (!answers.length) throw new Error('no more scripted answers');
    return answers.shift();
  }) as Runner & { calls: Array<{ target: string; script: string }> };
  run.calls = calls;
  return run;
}

const change = (runId: string, summary: string, undo: JournalEntry['undo'], target = 'winrm://vm1') =>
  record({ runId, script: 'toggle-nla', target, summary, before: { v: 1 }, after: { v: 0 }, backup: null, undo }, dir);

const ps = (script: string) => ({ kind: 'powershell' as const, target: 'winrm://vm1', script });

const rt = suite('undo round trip at the journal level');
rt.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-undo-'));
});
rt.after.each(() => rmSync(dir, { recursive: true, force: true }));

rt('a recorded toggle-nla change is undone through the same channel, marked, and the undo journaled', async () => {
  // The change, made the way the script makes it (a fake WinRM channel answering with recorded JSON).
  const target = parseTarget('winrm://vm1');
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, { target, dryRun: false, journal: dir, run: scripted(nlaFixture('disable-changed.json')) });
  const [made] = await lastRun(dir);
  assert.ok(made);

  const run = scripted({ step: 'toggle-nla', mode: 'restore', status: 'changed', restored: [{ scope: 'local', name: 'UserAuthentication', before: 0, after: 1 }], after: { local: { UserAuthentication: 1 } } });
  const report = await undoEntries(await lastRun(dir), { journal: dir, run });
  assert.is(report.status, 'changed');
  assert.equal(run.calls, [{ target: JSON.stringify(target), script: (made.undo as { script: string }).script }], 'exactly the recorded script, on the recorded target');

  const all = await list(dir);
  assert.is(all.length, 2);
  assert.is(all[0]!.undone?.status, 'changed');
  assert.equal([all[1]!.script, all[1]!.target], ['undo', 'winrm://vm1']);
  assert.match(all[1]!.summary, new RegExp(`^undo of ${made.id} \\(toggle-nla\\): changed`));
  assert.equal(await lastRun(dir), [], 'nothing left; the undo entry itself is never offered for undo');
});

rt('newest first, and it stops at the first failure: older changes are not touched under a failed one', async () => {
  await change('r1', 'oldest', ps('# 1'));
  await change('r1', 'middle', ps('# 2'));
  await change('r1', 'newest', ps('# 3'));
  const run = scripted({ status: 'changed' }, { status: 'failed', error: 'Access is denied', problems: ['TermService did not come back'] });
  const report = await undoEntries(await lastRun(dir), { journal: dir, run });
  assert.is(report.status, 'failed');
  assert.equal(report.results.map((r) => [r.summary, r.status]), [
    ['newest', 'changed'],
    ['middle', 'failed'],
    ['oldest', 'skipped'],
  ]);
  assert.match(report.results[1]!.detail, /Access is denied; TermService did not come back/);
  assert.equal(run.calls.map((c) => c.script), ['# 3', '# 2']);
  const left = await lastRun(dir);
  assert.equal(left.map((e) => e.summary), ['middle', 'oldest'], 'only the undone one is marked');
});

rt('"already as before" (ok) counts as undone; a change with no automatic undo is skipped with its reason', async () => {
  await change('r2', 'restart', { kind: 'none', reason: 'a service restart has nothing to put back' });
  await change('r2', 'set', ps('# set'));
  const report = await undoEntries(await lastRun(dir), { journal: dir, run: scripted({ status: 'ok' }) });
  assert.is(report.status, 'ok');
  assert.equal(report.results.map((r) => r.status), ['ok', 'skipped']);
  assert.match(report.results[1]!.detail, /nothing to put back/);
});

rt('a local command undo (as the network scripts record for an MTU) runs as argv and is verified', async () => {
  const file = join(dir, "mtu restored; $(touch pwned)");
  await change('r3', 'client MTU 1400', { kind: 'command', argv: ['touch', file], verify: ['test', '-f', file] }, 'client');
  const r = await undoEntry((await lastRun(dir))[0]!, { journal: dir });
  assert.is(r.status, 'changed');
  assert.ok(existsSync(file), 'the argv reached the program unchanged, no shell');
  assert.not.ok(existsSync(join(root, 'pwned')) || existsSync('pwned'));
  assert.match(r.detail, /verified/);

  await change('r4', 'client MTU 1300', { kind: 'command', argv: ['false'] }, 'client');
  const f = await undoEntry((await lastRun(dir))[0]!, { journal: dir });
  assert.is(f.status, 'failed');
  assert.match(f.detail, /false exited 1/);
  assert.is((await lastRun(dir)).length, 1, 'a failed undo leaves the entry to try again');
});

rt('a channel that cannot be reached is a failed undo, not a crash', async () => {
  await change('r5', 'x', { kind: 'powershell', target: 'local', script: '# x' });
  const r = await undoEntry((await lastRun(dir))[0]!, { journal: dir });
  assert.is(r.status, 'failed');
  assert.match(r.detail, /this Windows machine, but this is/);
});

// ---

const cli = suite('undo CLI');
cli.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-undo-cli-'));
});
cli.after.each(() => rmSync(dir, { recursive: true, force: true }));

const run = (args: string[], path?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/undo.ts', ...args, '--journal', dir], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, RDPFIX_JOURNAL: '', ...(path ? { PATH: `${path}:${process.env.PATH}` } : {}) },
  });

cli('without --yes and without a terminal it refuses (exit 2) and runs nothing', async () => {
  await change('r1', 'x', { kind: 'powershell', target: 'ssh://admin@vm1', script: '# x' });
  const fb = fakeBin(['ssh']);
  try {
    const r = run(['--last'], fb.dir);
    assert.is(r.status, 2);
    assert.match(r.stderr, /pass --yes/);
    assert.not.ok(existsSync(join(fb.dir, 'ssh.argv')));
  } finally {
    fb.remove();
  }
});

cli('--last --yes --json runs the recorded script through the recorded channel', async () => {
  const e = await change('r1', 'NLA off', { kind: 'powershell', target: 'ssh://admin@vm1', script: '# the undo script\n' }, 'ssh://admin@vm1');
  const fb = fakeBin(['ssh']);
  try {
    fb.answer('ssh', `${RESULT_BEGIN}\n${JSON.stringify({ step: 'toggle-nla-undo', status: 'changed' })}\n${RESULT_END}\n`);
    const r = run(['--last', '--yes', '--json'], fb.dir);
    assert.is(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { status: string; results: Array<{ id: string; status: string }> };
    assert.is(doc.status, 'changed');
    assert.equal(doc.results.map((x) => [x.id, x.status]), [[e.id, 'changed']]);
    assert.is(fb.stdin('ssh'), '# the undo script\n');
    assert.ok(fb.argv('ssh').includes('admin@vm1'));
  } finally {
    fb.remove();
  }
});

cli('--run RUN_ID (what run-recipe --rollback calls), --list --target, --emit and --dry-run', async () => {
  await change('run-a', 'a', { kind: 'powershell', target: 'winrm://vm1', script: '# a' });
  await change('run-b', 'b', { kind: 'powershell', target: 'winrm://vm2', script: '# b' }, 'winrm://vm2');
  let r = run(['--list', '--target', 'winrm://vm2', '--json']);
  assert.equal((JSON.parse(r.stdout) as { entries: JournalEntry[] }).entries.map((x) => x.summary), ['b']);
  r = run(['--run', 'run-a', '--emit']);
  assert.is(r.status, 0);
  assert.match(r.stdout, /^# undo of .*toggle-nla on winrm:\/\/vm1\): a\n# a/);
  r = run(['--run', 'run-a', '--dry-run', '--json']);
  const dry = JSON.parse(r.stdout) as { status: string; results: Array<{ summary: string; status: string }> };
  assert.equal([dry.status, dry.results.map((x) => x.summary)], ['would-change', ['a']]);
  assert.equal((await list(dir)).filter((x) => x.undone), [], 'emit and dry-run change nothing');
});

cli('bad input is exit 2', () => {
  for (const args of [['--last', '0'], ['--last', 'x'], ['bad;id'], ['20250101-000000000-none-abc'], ['--run', '../x'], ['--list', '--last'], ['--list', '--target', 'winrm://a;b'], []]) {
    const r = run([...args, '--yes']);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
});

rt.run();
cli.run();
