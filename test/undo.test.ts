import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../scripts/lib/channels.ts';
import { lastRun, list, markUndone, record, type JournalEntry } from '../scripts/lib/journal.ts';
import { RESULT_BEGIN, RESULT_END } from '../scripts/lib/ps.ts';
import type { Runner } from '../scripts/lib/server-step.ts';
import { toggleNla } from '../scripts/toggle-nla.ts';
import { markAlreadyUndone, openEntries, planUndo, runUndo, undoEntries, undoEntry } from '../scripts/lib/undo.ts';
import { fakeBin } from './helpers/fakebin.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
// The seal key of these tests, so they neither need nor touch the user's ~/.rdpfix/journal.key.
const keyDir = mkdtempSync(join(tmpdir(), 'rdpfix-undo-key-'));
process.env.RDPFIX_JOURNAL_KEY = join(keyDir, 'journal.key');
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

const mtuChange = (runId: string, undo: JournalEntry['undo']) =>
  record({ runId, script: 'lower-mtu', target: 'client', summary: 'MTU of wg0: 1500 -> 1400', before: { interface: 'wg0', mtu: 1500 }, after: { interface: 'wg0', mtu: 1400 }, backup: null, undo }, dir);

/** A fake ip: `ip link set ...` exits `setCode`; `ip link show dev IF` reports `mtu`. */
function fakeIp(mtu: number, setCode = 0) {
  const calls: string[][] = [];
  const exec = async (argv: string[]) => {
    calls.push(argv);
    if (argv[1] === 'link' && argv[2] === 'show') return { code: 0, stdout: `5: ${argv[4]}: <POINTOPOINT,UP> mtu ${mtu} qdisc noqueue state UNKNOWN\n`, stderr: '' };
    return { code: setCode, stdout: '', stderr: setCode ? 'RTNETLINK answers: Operation not permitted' : '' };
  };
  return { exec, calls };
}

rt('an MTU command undo runs exactly the recorded argv and is verified by reading the MTU back', async () => {
  await mtuChange('r3', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'] });
  const ip = fakeIp(1500);
  const r = await undoEntry((await lastRun(dir))[0]!, { journal: dir, exec: ip.exec, platform: 'linux' });
  assert.is(r.status, 'changed', r.detail);
  assert.equal(ip.calls, [['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'], ['ip', 'link', 'show', 'dev', 'wg0']]);
  assert.match(r.detail, /reads MTU 1500/);
  assert.equal(await lastRun(dir), []);
});

rt('an MTU undo whose read-back disagrees, or whose command fails, is failed and stays open', async () => {
  await mtuChange('r4', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'] });
  const stuck = await undoEntry((await lastRun(dir))[0]!, { journal: dir, exec: fakeIp(1400).exec, platform: 'linux' });
  assert.is(stuck.status, 'failed');
  assert.match(stuck.detail, /reads MTU 1400, not 1500/);
  const denied = await undoEntry((await lastRun(dir))[0]!, { journal: dir, exec: fakeIp(1400, 2).exec, platform: 'linux' });
  assert.is(denied.status, 'failed');
  assert.match(denied.detail, /exited 2: RTNETLINK answers: Operation not permitted/);
  assert.is((await lastRun(dir)).length, 1, 'a failed undo leaves the entry to try again');
});

rt('a command undo outside the allow-list is refused and nothing runs, even when the file is sealed', async () => {
  const hostile: Array<[string, JournalEntry['undo']]> = [
    ['lower-mtu', { kind: 'command', argv: ['sh', '-c', 'touch /tmp/pwned'] }],
    ['lower-mtu', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500', 'up'] }],
    ['lower-mtu', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0;reboot', 'mtu', '1500'] }],
    ['lower-mtu', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '70000'] }],
    ['lower-mtu', { kind: 'command', argv: ['/tmp/ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'] }],
    ['lower-mtu', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'], verify: ['rm', '-rf', '/'] }],
    ['toggle-nla', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'] }],
  ];
  for (const [script, undo] of hostile) {
    await record({ runId: 'rh', script, target: 'client', summary: 'x', before: null, after: null, backup: null, undo }, dir);
    const ip = fakeIp(1500);
    const r = await undoEntry((await lastRun(dir))[0]!, { journal: dir, exec: ip.exec, platform: 'linux' });
    assert.is(r.status, 'failed', JSON.stringify(undo));
    assert.match(r.detail, /^refused, nothing run: /);
    assert.equal(ip.calls, [], `nothing ran for ${JSON.stringify(undo)}`);
    await markUndoneAll();
  }
});

async function markUndoneAll() {
  for (const e of await lastRun(dir)) await markUndone(e.id, { time: new Date().toISOString(), status: 'ok' }, dir);
}

rt('a PowerShell undo without a valid seal (hand-written, or edited after the fact) is refused', async () => {
  const made = await change('r6', 'NLA off', ps('# the real undo'));
  const file = join(dir, `${made.id}.json`);
  const edited = { ...(JSON.parse(readFileSync(file, 'utf8')) as JournalEntry), undo: ps('Remove-Item C:\\ -Recurse') };
  writeFileSync(file, JSON.stringify(edited));
  const run = scripted({ status: 'changed' });
  const r = await undoEntry((await lastRun(dir))[0]!, { journal: dir, run });
  assert.is(r.status, 'failed');
  assert.match(r.detail, /does not carry this rdpfix's seal/);
  assert.equal(run.calls, [], 'the channel was never used');

  const { seal: _seal, ...unsealed } = made;
  writeFileSync(file, JSON.stringify(unsealed));
  assert.match((await undoEntry((await lastRun(dir))[0]!, { journal: dir, run })).detail, /seal/);
  assert.equal(run.calls, []);
});

rt('a sealed PowerShell undo may only go to its own entry\'s target', async () => {
  await change('r7', 'x', { kind: 'powershell', target: 'winrm://elsewhere', script: '# x' });
  const run = scripted({ status: 'changed' });
  const r = await undoEntry((await lastRun(dir))[0]!, { journal: dir, run });
  assert.match(r.detail, /^refused, nothing run: its undo goes to "winrm:\/\/elsewhere", not to the entry's own target "winrm:\/\/vm1"/);
  assert.equal(run.calls, []);
});

rt('a channel that cannot be reached is a failed undo, not a crash', async () => {
  await change('r5', 'x', { kind: 'powershell', target: 'local', script: '# x' }, 'client');
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
  assert.match(r.stdout, /^# rdpfix undo: 1 journal entry, newest first/);
  assert.match(r.stdout, /# Pasting this does not update that journal/);
  assert.match(r.stdout, /\n# undo of .*toggle-nla on winrm:\/\/vm1\): a\n# a/);
  r = run(['--run', 'run-a', '--dry-run', '--json']);
  const dry = JSON.parse(r.stdout) as { status: string; results: Array<{ summary: string; status: string }> };
  assert.equal([dry.status, dry.results.map((x) => x.summary)], ['would-change', ['a']]);
  assert.equal((await list(dir)).filter((x) => x.undone), [], 'emit and dry-run change nothing');
});

cli('a --journal that is not a folder is a usage error naming it (a typo is not "0 journal entries")', () => {
  for (const [journal, why] of [[join(dir, 'no-such'), 'no such folder'], [join(root, 'package.json'), 'not a folder']] as const) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/undo.ts', '--list', '--journal', journal], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 2, journal);
    assert.is(r.stdout, '');
    assert.match(r.stderr, `--journal ${JSON.stringify(journal)}: ${why}`);
  }
});

cli('--reconcile with a --journal that does not exist yet is fine: it creates or needs none', () => {
  const fresh = join(dir, 'not-yet');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/undo.ts', '--reconcile', '--journal', fresh], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, RDPFIX_JOURNAL: '' } });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, 'nothing to reconcile');
});

cli('an empty journal: --last --emit writes nothing to stdout, says why on stderr, and exits 1', () => {
  const r = run(['--last', '--emit']);
  assert.is(r.status, 1);
  assert.is(r.stdout, '', 'nothing a `> undo.ps1` could take for a script');
  assert.match(r.stderr, /nothing to undo: no script or recipe run with a change that is not undone yet/);
});

cli('every selector that selects nothing is exit 1; with --json it is one document with status nothing-to-undo', async () => {
  for (const args of [['--last'], ['--last', '3'], ['--run', 'no-such-run'], ['--last', '--dry-run'], ['--last', '--emit']]) {
    const r = run([...args, '--yes', '--json']);
    assert.is(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    const doc = JSON.parse(r.stdout) as { status: string; summary: string };
    assert.is(doc.status, 'nothing-to-undo', args.join(' '));
    assert.match(doc.summary, /^nothing to undo: /);
  }
  await change('r1', 'a', ps('# a'));
  const r = run(['--run', 'r1', '--target', 'winrm://vm2', '--yes']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /run r1 has no change on winrm:\/\/vm2 that is not undone yet/);
});

cli('foreign or damaged files are listed as damaged by name and never hide the valid entries', async () => {
  const ok = await change('r1', 'NLA off', ps('# a'));
  writeFileSync(join(dir, 'foreign.json'), '{"foo":1}');
  writeFileSync(join(dir, 'null.json'), 'null');
  writeFileSync(join(dir, 'half.json'), '{"id": "x"');
  let r = run(['--list']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(r.stdout.includes(ok.id), r.stdout);
  assert.match(r.stdout, /damaged .*foreign\.json: no valid "id" \(skipped\)/);
  assert.match(r.stdout, /damaged .*null\.json: not a journal entry \(a JSON null, expected an object\)/);
  assert.match(r.stdout, /damaged .*half\.json: not JSON/);
  r = run(['--list', '--json']);
  const doc = JSON.parse(r.stdout) as { entries: JournalEntry[]; damaged: Array<{ file: string; why: string }> };
  assert.equal(doc.entries.map((e) => e.id), [ok.id]);
  assert.equal(doc.damaged.map((d) => d.file.split('/').pop()).sort(), ['foreign.json', 'half.json', 'null.json']);
  r = run(['--last', '--dry-run']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /3 damaged journal file\(s\) were skipped/);
});

cli('a hostile hand-written entry is refused with a clear message and never runs', () => {
  const pwned = join(dir, 'pwned');
  const id = '20990101-000000000-lower-mtu-abcdef';
  writeFileSync(join(dir, `${id}.json`), JSON.stringify({
    id, time: '2099-01-01T00:00:00.000Z', runId: 'evil', script: 'lower-mtu', target: 'client', summary: 'MTU of wg0', before: null, after: null, backup: null,
    undo: { kind: 'command', argv: ['sh', '-c', `touch ${pwned}`] },
  }));
  let r = run(['--last', '--yes']);
  assert.is(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /refused, nothing run: \["sh","-c","touch .*pwned"\] is not one of the MTU commands rdpfix records/);
  assert.not.ok(existsSync(pwned), 'the command never ran');
  r = run(['--list']);
  assert.match(r.stdout, /20990101-000000000-lower-mtu-abcdef .*\[undo refused: \["sh","-c","touch .*pwned"\] is not one of the MTU commands rdpfix records \(ip link set dev IF mtu N, ifconfig IF mtu N, netsh interface ipv4 set subinterface IF mtu=N store=...\)\]/);
  r = run(['--last', '--emit']);
  assert.is(r.status, 1);
  assert.match(r.stdout, /# 20990101-000000000-lower-mtu-abcdef \(lower-mtu on client\): not emitted: /);
  assert.match(r.stderr, /refused/);
});

cli('bad input is exit 2', () => {
  for (const args of [['--last', '0'], ['--last', 'x'], ['bad;id'], ['20250101-000000000-none-abc'], ['--run', '../x'], ['--list', '--last'], ['--list', '--target', 'winrm://a;b'], []]) {
    const r = run([...args, '--yes']);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
});

rt.run();
cli.run();
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));

// --- lib/undo.ts as the other scripts use it, and the step contract of every --json document.

const core = suite('lib/undo.ts for toggle-nla --restore and lower-mtu --revert');
core.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-undo-core-'));
});
core.after.each(() => rmSync(dir, { recursive: true, force: true }));

core('`by` names who undid it in the mark and in the undo\'s own entry; runUndo hands back the raw result', async () => {
  const made = await change('c1', 'NLA off', ps('# undo'));
  const answer = { step: 'toggle-nla', mode: 'restore', status: 'changed', restored: [] };
  const { outcome, raw } = await runUndo(made, { journal: dir, run: scripted(answer), by: 'toggle-nla --restore' });
  assert.is(outcome.status, 'changed');
  assert.equal(raw, answer);
  const [e, u] = await list(dir);
  assert.equal([e!.undone?.status, e!.undone?.detail], ['changed', 'undone by toggle-nla --restore']);
  assert.match(u!.summary, new RegExp(`^undo of ${made.id} \\(toggle-nla\\) by toggle-nla --restore: changed`));
  assert.is(outcome.undoEntry, u!.id);
});

core('recordUndo false marks the entry and journals nothing else; a refused undo hands back no raw result', async () => {
  const made = await mtuChange('c2', { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'] });
  const r = await undoEntry(made, { journal: dir, exec: fakeIp(1500).exec, platform: 'linux', recordUndo: false });
  assert.is(r.status, 'changed');
  assert.equal((await list(dir)).map((e) => [e.script, e.undone?.status]), [['lower-mtu', 'changed']]);
  const hostile = await mtuChange('c3', { kind: 'command', argv: ['sh', '-c', 'id'] });
  const refused = await runUndo(hostile, { journal: dir, exec: fakeIp(1500).exec, platform: 'linux' });
  assert.equal([refused.outcome.status, refused.raw], ['failed', null]);
});

core('planUndo decides from the allow-list alone; markAlreadyUndone marks ok without running anything', async () => {
  const a = await change('c4', 'a', ps('# a'));
  const b = await change('c4', 'b', { kind: 'none', reason: 'nothing to put back' });
  const c = await mtuChange('c4', { kind: 'command', argv: ['sh', '-c', 'id'] });
  assert.equal(planUndo([a, b, c]).map((x) => x.status), ['would-change', 'skipped', 'failed']);
  const r = await markAlreadyUndone(a, 'already as before', { journal: dir, by: 'lower-mtu --revert' });
  assert.is(r.status, 'ok');
  const marked = (await list(dir)).find((e) => e.id === a.id)!;
  assert.equal([marked.undone?.status, marked.undone?.detail], ['ok', 'already as before; undone by lower-mtu --revert']);
  assert.equal(openEntries(await list(dir)).map((e) => e.summary), ['MTU of wg0: 1500 -> 1400', 'b'], 'open entries, newest first, the marked one gone');
});

const contractProblems = (d: Record<string, unknown>): string[] => {
  const out: string[] = [];
  if (!['ok', 'changed', 'would-change', 'failed', 'skipped', 'nothing-to-undo'].includes(d.status as string)) out.push(`status ${String(d.status)}`);
  if (typeof d.summary !== 'string' || !d.summary || /[\r\n]/.test(d.summary)) out.push('summary');
  if (d.cause !== null) out.push('cause');
  for (const k of ['evidence', 'next', 'notes']) if (!Array.isArray(d[k]) || !(d[k] as unknown[]).every((x) => typeof x === 'string')) out.push(k);
  if (!Array.isArray(d.changes) || !(d.changes as Array<{ summary?: unknown }>).every((c) => typeof c.summary === 'string')) out.push('changes');
  return out;
};

core('every --json document of the CLI has the step contract (list, emit, dry run, nothing to undo, an undo)', async () => {
  const e = await change('c5', 'NLA off', { kind: 'powershell', target: 'ssh://admin@vm1', script: '# the undo script\n' }, 'ssh://admin@vm1');
  const docs: Array<[string, Record<string, unknown>]> = [];
  for (const args of [['--list'], ['--last', '--emit'], ['--last', '--dry-run'], ['--run', 'no-such-run', '--yes']]) docs.push([args.join(' '), JSON.parse(run([...args, '--json']).stdout) as Record<string, unknown>]);
  const fb = fakeBin(['ssh']);
  try {
    fb.answer('ssh', `${RESULT_BEGIN}\n${JSON.stringify({ step: 'toggle-nla-undo', status: 'changed' })}\n${RESULT_END}\n`);
    const r = run(['--last', '--yes', '--json'], fb.dir);
    assert.is(r.status, 0, r.stderr);
    docs.push(['--last --yes', JSON.parse(r.stdout) as Record<string, unknown>]);
  } finally {
    fb.remove();
  }
  for (const [what, doc] of docs) assert.equal(contractProblems(doc), [], what);
  const undone = docs.at(-1)![1];
  assert.equal((undone.changes as Array<{ id: string }>).map((c) => c.id), [e.id]);
  assert.match((undone.evidence as string[])[0]!, new RegExp(`^${e.id}: changed`));
  assert.equal((docs[2]![1].changes as Array<{ summary: string }>).map((c) => c.summary), [`would undo ${e.id} (toggle-nla on ssh://admin@vm1): NLA off`], 'a dry run lists what it would undo');
  assert.equal(docs[0]![1].changes, [], '--list changes nothing');
});

core.run();
