import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lastRun, list, markUndone, record } from '../../scripts/lib/journal.ts';

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
