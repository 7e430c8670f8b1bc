import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isUndoEntry, lastRun, list, markUndone, newest, record, runEntries, UNDO_SCRIPT } from '../../scripts/lib/journal.ts';

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
