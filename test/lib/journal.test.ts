import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  isSealed, isUndoEntry, lastRun, list, markUndone, matchMtuCommand, newest, parseEntry, readJournal, readRunFiles, record, runEntries,
  UNDO_SCRIPT, undoPermit, type JournalEntry,
} from '../../scripts/lib/journal.ts';

const keyDir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-key-'));
process.env.RDPFIX_JOURNAL_KEY = join(keyDir, 'journal.key');

const j = suite('journal');
let dir = '';
j.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
});
j.after.each(() => rmSync(dir, { recursive: true, force: true }));

const entry = (runId: string, summary: string) => ({
  runId, script: 'toggle-nla', target: 'winrm://vm1', summary, before: { UserAuthentication: 1 }, after: { UserAuthentication: 0 },
  backup: 'C:\\ProgramData\\rdpfix\\backup\\x', undo: { kind: 'none' as const, reason: 'test' },
});

j('records one file per change and lists them oldest first', async () => {
  await record(entry('r1', 'first'), dir);
  await record(entry('r1', 'second'), dir);
  const all = await list(dir);
  assert.equal(all.map((e) => e.summary), ['first', 'second']);
  assert.ok(all.every((e) => e.id && e.time && e.runId === 'r1'));
});

j('lastRun returns the newest run, newest change first, without undone entries', async () => {
  await record(entry('r1', 'old'), dir);
  const a = await record(entry('r2', 'a'), dir);
  await record(entry('r2', 'b'), dir);
  assert.equal((await lastRun(dir)).map((e) => e.summary), ['b', 'a']);
  await markUndone(a.id, { time: new Date().toISOString(), status: 'ok' }, dir);
  assert.equal((await lastRun(dir)).map((e) => e.summary), ['b']);
});

j('ignores files that are not journal JSON', async () => {
  writeFileSync(join(dir, 'junk.json'), '{not json');
  await record(entry('r1', 'x'), dir);
  assert.is((await list(dir)).length, 1);
});

j.run();

// ---

const runs = suite('journal runs and undo entries');
let rdir = '';
runs.before.each(() => {
  rdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
});
runs.after.each(() => rmSync(rdir, { recursive: true, force: true }));

runs('lastRun skips undo entries, so undo --last never undoes an undo', async () => {
  await record(entry('r1', 'change'), rdir);
  await record({ ...entry('r2', 'undo of change'), script: UNDO_SCRIPT }, rdir);
  const last = await lastRun(rdir);
  assert.equal(last.map((e) => e.summary), ['change'], 'the newest non-undo run is r1');
  assert.ok(isUndoEntry((await list(rdir)).at(-1)!));
});

runs('entries recorded in the same millisecond keep the order they were made in', async () => {
  const made: string[] = [];
  for (let i = 0; i < 20; i++) made.push((await record(entry('r1', `c${i}`), rdir)).summary);
  assert.equal((await list(rdir)).map((e) => e.summary), made);
  assert.equal((await lastRun(rdir)).map((e) => e.summary), [...made].reverse());
});

runs('runEntries and newest select by run and by count, newest first, without undone or undo entries', async () => {
  const a = await record(entry('r1', 'a'), rdir);
  await record(entry('r2', 'b'), rdir);
  await record(entry('r1', 'c'), rdir);
  await record({ ...entry('r1', 'u'), script: UNDO_SCRIPT }, rdir);
  assert.equal((await runEntries('r1', rdir)).map((e) => e.summary), ['c', 'a']);
  await markUndone(a.id, { time: new Date().toISOString(), status: 'changed' }, rdir);
  assert.equal((await runEntries('r1', rdir)).map((e) => e.summary), ['c']);
  assert.equal((await newest(2, rdir)).map((e) => e.summary), ['c', 'b']);
  assert.equal((await newest(5, rdir, (e) => e.runId === 'r2')).map((e) => e.summary), ['b']);
});

runs('a command undo may carry a verify command (compatible with older entries)', async () => {
  const e = await record({ ...entry('r1', 'mtu'), undo: { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1500'], verify: ['true'] } }, rdir);
  const back = (await list(rdir)).find((x) => x.id === e.id)!;
  assert.equal(back.undo, { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1500'], verify: ['true'] });
});

runs.run();

// ---

const schema = suite('journal schema: damaged files');
let sdir = '';
schema.before.each(() => {
  sdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
});
schema.after.each(() => rmSync(sdir, { recursive: true, force: true }));

schema('foreign, null, truncated and mislabelled files are named with why, and never hide the valid entries', async () => {
  const good = await record(entry('r1', 'kept'), sdir);
  const copy = { ...(JSON.parse(readFileSync(join(sdir, `${good.id}.json`), 'utf8')) as object) };
  writeFileSync(join(sdir, 'foo.json'), '{"foo":1}');
  writeFileSync(join(sdir, 'null.json'), 'null');
  writeFileSync(join(sdir, 'cut.json'), '{"id": "20250101');
  writeFileSync(join(sdir, 'renamed.json'), JSON.stringify(copy));
  writeFileSync(join(sdir, 'no-time.json'), JSON.stringify({ ...copy, id: 'no-time', time: 1 }));
  writeFileSync(join(sdir, 'shell.json'), JSON.stringify({ ...copy, id: 'shell', undo: { kind: 'shell', command: 'rm -rf /' } }));
  mkdirSync(join(sdir, 'folder.json'));
  const { entries, damaged } = await readJournal(sdir);
  assert.equal(entries.map((e) => e.summary), ['kept']);
  const why = Object.fromEntries(damaged.map((d) => [d.file.split('/').pop(), d.why]));
  assert.equal(Object.keys(why).sort(), ['cut.json', 'folder.json', 'foo.json', 'no-time.json', 'null.json', 'renamed.json', 'shell.json']);
  assert.is(why['foo.json'], 'no valid "id"');
  assert.is(why['null.json'], 'not a journal entry (a JSON null, expected an object)');
  assert.match(why['cut.json']!, /^not JSON/);
  assert.match(why['renamed.json']!, /does not match the file name/);
  assert.match(why['no-time.json']!, /no valid "time"/);
  assert.is(why['shell.json'], 'an undo of unknown kind "shell"');
  assert.match(why['folder.json']!, /^cannot be read \(EISDIR\)/);
  assert.equal((await lastRun(sdir)).map((e) => e.summary), ['kept'], 'lastRun reads through the damage');
});

schema('record refuses to write an entry that no reader would accept', async () => {
  try {
    await record({ ...entry('r1', 'x'), target: '' }, sdir);
    assert.unreachable('recorded an entry without a target');
  } catch (e) {
    assert.match((e as Error).message, /no valid "target"/);
  }
  assert.throws(() => parseEntry({ ...entry('r1', 'x'), id: 'a', time: '2025-01-01T00:00:00.000Z', undone: { time: 'yesterday', status: 'ok' } }, 'a.json'), /"undone" is not/);
});

schema.run();

// ---

const seal = suite('journal seal and the undo allow-list');
let kdir = '';
seal.before.each(() => {
  kdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
});
seal.after.each(() => rmSync(kdir, { recursive: true, force: true }));

const psEntry = (target = 'winrm://vm1', undoTarget = target) =>
  record({ ...entry('r1', 'nla'), target, undo: { kind: 'powershell', target: undoTarget, script: '# rdpfix toggle-nla: restore\n' } }, kdir);

seal('record seals each entry with a per-user key (0600); marking it undone keeps the seal', async () => {
  const e = await psEntry();
  assert.ok(isSealed(e));
  assert.is(statSync(process.env.RDPFIX_JOURNAL_KEY!).mode & 0o777, 0o600);
  await markUndone(e.id, { time: new Date().toISOString(), status: 'changed' }, kdir);
  const back = (await list(kdir))[0]!;
  assert.ok(back.undone);
  assert.ok(isSealed(back), 'undone is outside the seal');
  assert.equal(undoPermit(back), { ok: true, kind: 'powershell', target: 'winrm://vm1', script: '# rdpfix toggle-nla: restore\n' });
});

seal('any edit of a sealed entry, or another key, breaks the seal and the PowerShell undo is refused', async () => {
  const e = await psEntry();
  for (const edited of [
    { ...e, undo: { kind: 'powershell' as const, target: 'winrm://vm1', script: 'Stop-Computer -Force' } },
    { ...e, target: 'winrm://vm2', undo: { kind: 'powershell' as const, target: 'winrm://vm2', script: '# rdpfix toggle-nla: restore\n' } },
    { ...e, before: { UserAuthentication: 0 } },
    { ...e, seal: undefined },
  ]) {
    assert.not.ok(isSealed(edited as JournalEntry));
    const p = undoPermit(edited as JournalEntry);
    assert.is(p.ok, false);
    assert.match((p as { why: string }).why, /does not carry this rdpfix's seal/);
  }
  const key = process.env.RDPFIX_JOURNAL_KEY;
  process.env.RDPFIX_JOURNAL_KEY = join(kdir, 'other.key');
  try {
    writeFileSync(process.env.RDPFIX_JOURNAL_KEY, 'ab'.repeat(32));
    assert.not.ok(isSealed(e), 'an entry sealed on another account or machine');
  } finally {
    process.env.RDPFIX_JOURNAL_KEY = key;
  }
});

seal('a client entry may undo on local; any other target than its own is refused', async () => {
  assert.is(undoPermit(await psEntry('client', 'local')).ok, true);
  const p = undoPermit(await psEntry('winrm://vm1', 'ssh://admin@vm9'));
  assert.is(p.ok, false);
});

seal('the MTU command shapes lower-mtu records are allowed, exactly, with validated values', () => {
  assert.equal(matchMtuCommand(['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500']), { iface: 'wg0', mtu: 1500, platform: 'linux' });
  assert.equal(matchMtuCommand(['/usr/sbin/ip', 'link', 'set', 'dev', 'lo', 'mtu', '65536']), { iface: 'lo', mtu: 65536, platform: 'linux' });
  assert.equal(matchMtuCommand(['ifconfig', 'utun3', 'mtu', '1400']), { iface: 'utun3', mtu: 1400, platform: 'darwin' });
  assert.equal(matchMtuCommand(['netsh', 'interface', 'ipv4', 'set', 'subinterface', 'Ethernet 2', 'mtu=1500', 'store=persistent']), { iface: 'Ethernet 2', mtu: 1500, platform: 'win32' });
  for (const bad of [
    ['sh', '-c', 'touch /tmp/pwned'],
    ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500', 'down'],
    ['ip', 'link', 'set', 'dev', 'wg0', 'name', 'x'],
    ['ip', 'link', 'set', 'dev', '$(reboot)', 'mtu', '1500'],
    ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500; reboot'],
    ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '67'],
    ['./ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'],
    ['/home/me/ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'],
    ['ifconfig', 'en0', 'down'],
    ['netsh', 'interface', 'ipv4', 'set', 'subinterface', 'x', 'mtu=1500', 'store=persistent', 'extra'],
    ['netsh', 'advfirewall', 'set', 'allprofiles', 'state', 'off', 'x', 'y'],
  ]) {
    assert.type(matchMtuCommand(bad), 'string', JSON.stringify(bad));
  }
});

seal('command undos: only lower-mtu entries, and a verify only as the read-only check of the same interface', async () => {
  const cmd = (script: string, verify?: string[]) =>
    undoPermit({ ...(entry('r', 'x') as unknown as JournalEntry), id: 'x', time: '', script, undo: { kind: 'command', argv: ['ip', 'link', 'set', 'dev', 'wg0', 'mtu', '1500'], ...(verify ? { verify } : {}) } });
  assert.is(cmd('lower-mtu').ok, true);
  assert.is(cmd('lower-mtu', ['ip', 'link', 'show', 'dev', 'wg0']).ok, true);
  assert.is(cmd('lower-mtu', ['ip', 'link', 'show', 'dev', 'eth0']).ok, false);
  assert.is(cmd('lower-mtu', ['true']).ok, false);
  assert.is(cmd('toggle-nla').ok, false);
});

seal.run();

// ---

const runFiles = suite('run files (journal/runs/)');
let fdir = '';
runFiles.before.each(() => {
  fdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
  mkdirSync(join(fdir, 'runs'));
});
runFiles.after.each(() => rmSync(fdir, { recursive: true, force: true }));

runFiles('a damaged run file is named and skipped; the valid runs are still read, oldest first', () => {
  const run = (runId: string, started: string) => ({ runId, recipe: 'service-down', recipeFile: '/r/service-down.yaml', host: '10.0.0.4', target: 'winrm://10.0.0.4', dryRun: false, params: {}, started, steps: [{ id: 'probe', status: 'ok' }] });
  writeFileSync(join(fdir, 'runs', 'b.json'), JSON.stringify(run('b', '2025-01-02T00:00:00.000Z')));
  writeFileSync(join(fdir, 'runs', 'a.json'), JSON.stringify(run('a', '2025-01-01T00:00:00.000Z')));
  writeFileSync(join(fdir, 'runs', 'foo.json'), '{"foo":1}');
  writeFileSync(join(fdir, 'runs', 'null.json'), 'null');
  writeFileSync(join(fdir, 'runs', 'c.json'), JSON.stringify({ ...run('c', 'x'), steps: [null] }));
  const { runs: ok, damaged } = readRunFiles(fdir);
  assert.equal(ok.map((r) => r.runId), ['a', 'b']);
  assert.equal(damaged.map((d) => [d.file.split('/').pop(), d.why]).sort(), [
    ['c.json', 'no valid "started" (ISO 8601, UTC)'],
    ['foo.json', 'no valid "runId"'],
    ['null.json', 'not a run file (a JSON null, expected an object)'],
  ]);
});

runFiles.run();
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));
