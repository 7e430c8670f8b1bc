// The client side of the target-side journal: the intent entry a changing step writes before it
// runs, the tag its script carries, and the reconcile that reads the target's records when the step
// never returned (lib/target-record.ts, lib/reconcile.ts, undo --reconcile / --from-target).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../../scripts/lib/channels.ts';
import { list, openIntents, readJournal } from '../../scripts/lib/journal.ts';
import { reconcileIntents } from '../../scripts/lib/reconcile.ts';
import type { Runner, StepContext } from '../../scripts/lib/server-step.ts';
import { parseTargetRecord, recordChanges, tagScript, TAG_LINE, writesRecord } from '../../scripts/lib/target-record.ts';
import { setInterfaceMtu } from '../../scripts/lower-mtu.ts';
import { buildNlaScript, toggleNla, type NlaRaw } from '../../scripts/toggle-nla.ts';
import { main as undoMain } from '../../scripts/undo.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fx = (n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures/toggle-nla', n), 'utf8')) as NlaRaw;
const T = 'winrm://vm1';
let dir = '';

/** A target record as record.ps1 writes it, around a raw result. */
function recordFor(tag: string, raw: Record<string, unknown>, phase: 'intent' | 'complete', id = '20250601-120000-321-toggle-nla-a1b2c3') {
  return { schema: 'rdpfix-target-record/1', id, step: 'toggle-nla', tag, computer: 'VM1', user: 'S-1-5-18', pid: 4242, processStarted: '2025-06-01T12:00:00.0000000Z', started: '2025-06-01T12:00:00.0000000Z', updated: '2025-06-01T12:00:01.0000000Z', finished: phase === 'complete' ? '2025-06-01T12:00:02.0000000Z' : null, phase, backup: String(raw.backup), options: {}, result: raw, assume: raw, nested: null, undone: null };
}

/** A channel that answers the records listing with `records`, and anything else with `step`. */
function target(records: unknown[], step?: unknown, running = false): Runner & { scripts: string[] } {
  const scripts: string[] = [];
  const run = (async (_t, script) => {
    scripts.push(script);
    if (script.startsWith('# rdpfix target-records:')) return { step: 'target-records', status: 'ok', root: 'C:\\ProgramData\\rdpfix\\backup', records: records.map((r) => ({ record: r, running, size: 2048, folder: `C:\\ProgramData\\rdpfix\\backup\\${(r as { id: string }).id}` })), damaged: [] };
    if (step === undefined) throw new Error('the channel dropped');
    return step;
  }) as Runner & { scripts: string[] };
  run.scripts = scripts;
  return run;
}

const ctx = (run: Runner): StepContext => ({ target: parseTarget(T), dryRun: false, journal: dir, run });

const t = suite('target records: tag, intent, reconcile');
t.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-reconcile-'));
  process.env.RDPFIX_JOURNAL_KEY = join(dir, 'key');
});
t.after.each(() => rmSync(dir, { recursive: true, force: true }));

t('a changing script carries one RecordTag line (empty, as --emit prints it); tagging sets only that line; a hostile tag is refused', () => {
  const s = buildNlaScript({ mode: 'disable' }, false);
  assert.ok(writesRecord(s));
  assert.ok(s.includes('\nComplete-RdpTargetRecord -Result $Result\n'));
  const tagged = tagScript(s, '20250601-120000000-toggle-nla-abcdef');
  assert.is(tagged.replace("    RecordTag = '20250601-120000000-toggle-nla-abcdef'", TAG_LINE), s);
  assert.throws(() => tagScript(s, "x'; Remove-Item C:\\ -Recurse; '"), /not a journal id/);
  assert.not.ok(writesRecord(buildNlaScript({ mode: 'status' }, false)), 'a read-only mode writes no record');
});

t('a step that returns: the intent entry is written before it runs, the script carries its id, and it resolves with the change it journaled', async () => {
  const run = target([], { ...fx('disable-changed.json'), record: '20250601-120000-321-toggle-nla-a1b2c3' });
  const r = await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctx(run));
  assert.is(r.status, 'changed');
  const all = (await readJournal(dir)).entries;
  const intent = all.find((e) => e.intent)!;
  assert.ok(run.scripts[0]!.includes(`    RecordTag = '${intent.id}'`), 'the script carries the intent id');
  assert.is(intent.resolved?.outcome, 'completed');
  const [change] = await list(dir);
  assert.is(change!.targetRecord, '20250601-120000-321-toggle-nla-a1b2c3');
  assert.equal(intent.resolved?.entries, [change!.id]);
  assert.equal(await openIntents(dir), []);
});

t('the channel drops: the outcome stays unknown; reconcile journals the change from the complete record once, and a second reconcile has nothing to do', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctx(target([]))).catch(() => undefined);
  const [open] = await openIntents(dir);
  assert.ok(open, 'an open intent');
  assert.equal(await list(dir), [], 'no change journaled yet');
  const raw = { ...fx('disable-changed.json'), record: '20250601-120000-321-toggle-nla-a1b2c3' };
  const [o] = await reconcileIntents([open!], { journal: dir, run: target([recordFor(open!.id, raw, 'complete')]) });
  assert.is(o!.state, 'completed');
  assert.is(o!.status, 'changed');
  const changes = await list(dir);
  assert.is(changes.length, 1);
  assert.is(changes[0]!.runId, open!.runId, 'the change belongs to the run that made it');
  assert.is(changes[0]!.undo.kind, 'powershell');
  assert.equal(await openIntents(dir), []);
  // The same record reconciled again (another intent naming it cannot exist, but a retry can): no duplicate.
  const { journalRecord } = await import('../../scripts/lib/reconcile.ts');
  await journalRecord(parseTargetRecord(recordFor(open!.id, raw, 'complete')), T, open!.runId, { journal: dir });
  assert.is((await list(dir)).length, 1);
});

t('reconcile: a record stopped half-way journals what was in flight (its undo puts back whatever happened); none means not started; a live one stays open', async () => {
  for (const [records, running, state] of [
    [(id: string) => [recordFor(id, { ...fx('disable-changed.json'), status: 'failed' }, 'intent')], false, 'interrupted'],
    [() => [], false, 'not-started'],
    [(id: string) => [recordFor(id, fx('disable-changed.json'), 'intent')], true, 'running'],
  ] as const) {
    rmSync(dir, { recursive: true, force: true });
    await toggleNla({ mode: 'disable' }, ctx(target([]))).catch(() => undefined);
    const [open] = await openIntents(dir);
    // An hour later: past the time in which the channel could still have started the step.
    const [o] = await reconcileIntents([open!], { journal: dir, run: target(records(open!.id), undefined, running), now: Date.now() + 3_600_000 });
    assert.is(o!.state, state);
    const changes = await list(dir);
    if (state === 'interrupted') {
      assert.is(changes.length, 1);
      assert.match(changes[0]!.summary, /stopped half-way/);
    } else assert.equal(changes, []);
    assert.is((await openIntents(dir)).length, state === 'running' ? 1 : 0);
  }
});

t('undo --reconcile: exit 0 with what it found, the undo command of the run next; --from-target without --target is bad usage', async () => {
  await toggleNla({ mode: 'disable' }, ctx(target([]))).catch(() => undefined);
  const [open] = await openIntents(dir);
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await undoMain(['--reconcile', '--journal', dir, '--json'], { run: target([recordFor(open!.id, fx('disable-changed.json'), 'complete')]) });
  } finally {
    process.stdout.write = write;
  }
  assert.is(code, 0);
  const doc = JSON.parse(out.join(''));
  assert.is(doc.status, 'ok');
  assert.is(doc.results[0].state, 'completed');
  assert.ok(doc.next.some((n: string) => n.includes(`--run ${open!.runId}`)));
  await undoMain(['--from-target', '--list', '--journal', dir]).then(
    () => assert.unreachable('accepted --from-target without --target'),
    (e: Error) => assert.match(e.message, /--from-target needs --target/),
  );
});

t('lower-mtu on Windows: an intent entry before its script runs, the script tagged; killed half-way, reconcile journals the change from the record as the step would have', async () => {
  const rid = '20250601-120000-321-lower-mtu-a1b2c3';
  const raw = { step: 'lower-mtu', status: 'changed', interface: 'Ethernet', before: 1500, after: 1400, store: 'persistent', backup: `C:\\ProgramData\\rdpfix\\backup\\${rid}\\mtu.json`, record: rid };
  const ok = target([], raw);
  const r = await setInterfaceMtu({ interface: 'Ethernet', mtu: 1400, platform: 'win32', journalDir: dir, run: ok });
  assert.is(r.status, 'changed');
  const intent = (await readJournal(dir)).entries.find((e) => e.intent)!;
  assert.is(intent.target, 'local');
  assert.ok(ok.scripts[0]!.includes(`    RecordTag = '${intent.id}'`), 'the script carries the intent id');
  const [entry] = await list(dir);
  assert.equal(intent.resolved?.entries, [entry!.id]);
  assert.is(entry!.targetRecord, rid);

  rmSync(dir, { recursive: true, force: true });
  await setInterfaceMtu({ interface: 'Ethernet', mtu: 1400, platform: 'win32', journalDir: dir, run: target([]) }).then(
    () => assert.unreachable('a dropped channel returned'),
    () => undefined,
  );
  const [open] = await openIntents(dir);
  assert.ok(open, 'the outcome is unknown');
  const rec = { schema: 'rdpfix-target-record/1', id: rid, step: 'lower-mtu', tag: open!.id, computer: 'PC1', user: 'S-1-5-21-1-2-3-500', pid: 4242, processStarted: '2025-06-01T12:00:00.0000000Z', started: '2025-06-01T12:00:00.0000000Z', updated: '2025-06-01T12:00:01.0000000Z', finished: null, phase: 'intent', backup: raw.backup, options: { backupDir: 'C:\\ProgramData\\rdpfix\\backup', mtu: 1400, store: 'persistent', interface: 'Ethernet' }, result: { ...raw, status: 'failed', after: null }, assume: raw, nested: null, undone: null };
  const [o] = await reconcileIntents([open!], { journal: dir, run: target([rec]) });
  assert.is(o!.state, 'interrupted');
  const [change] = await list(dir);
  assert.equal(change!.before, { interface: 'Ethernet', mtu: 1500 });
  assert.is(change!.undo.kind, 'powershell');
  assert.match((change!.undo as { script: string }).script, /Mtu = 1500/);
});

t('undo --record-file FILE --emit: the undo of a record copied off a server, as the journal would hold it; without --emit, damaged or undone: refused', async () => {
  const raw = { ...fx('disable-changed.json'), record: '20250601-120000-321-toggle-nla-a1b2c3' };
  const rec = recordFor('', raw, 'complete');
  const file = join(dir, 'record.json');
  writeFileSync(file, `\uFEFF${JSON.stringify(rec)}`);
  const capture = async (argv: string[]) => {
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((x: string) => (out.push(String(x)), true)) as typeof process.stdout.write;
    try {
      return { code: await undoMain(argv), out: out.join('') };
    } finally {
      process.stdout.write = write;
    }
  };
  const { code, out } = await capture(['--record-file', file, '--emit']);
  assert.is(code, 0);
  const [change] = recordChanges(parseTargetRecord(rec), { target: parseTarget('local'), dryRun: false });
  assert.is(change!.undo.kind, 'powershell');
  assert.ok(out.includes((change!.undo as { script: string }).script), 'the undo script the journal would hold');
  assert.match(out, /^# rdpfix undo of record 20250601-120000-321-toggle-nla-a1b2c3 \(toggle-nla on VM1, completed\)/);
  const j = await capture(['--record-file', file, '--emit', '--json']);
  assert.is(JSON.parse(j.out).scripts.length, 1);
  await undoMain(['--record-file', file]).then(() => assert.unreachable('ran without --emit'), (e: Error) => assert.match(e.message, /goes with --emit/));
  writeFileSync(file, '{"schema":"rdpfix-target-record/1","id":"x"');
  await undoMain(['--record-file', file, '--emit']).then(() => assert.unreachable('took a damaged record'), (e: Error) => assert.match(e.message, /record\.json.*not an rdpfix target record/));
  writeFileSync(file, JSON.stringify({ ...rec, undone: { time: '2025-06-02T00:00:00.000Z', status: 'changed', by: 'undo --from-target', user: 'S-1-5-18' } }));
  assert.is((await capture(['--record-file', file, '--emit'])).code, 1);
});

t('reconcile right after a kill: no record yet is not "never started" while the channel could still start the step; after that time it is', async () => {
  await toggleNla({ mode: 'disable' }, ctx(target([]))).catch(() => undefined);
  const [open] = await openIntents(dir);
  const [young] = await reconcileIntents([open!], { journal: dir, run: target([]) });
  assert.is(young!.state, 'unknown');
  assert.match(young!.detail, /may still start it; reconcile again after \d{4}-/);
  assert.is((await openIntents(dir)).length, 1, 'still open');
  const [old] = await reconcileIntents([open!], { journal: dir, run: target([]), now: Date.parse(open!.time) + 181_000 });
  assert.is(old!.state, 'not-started', 'a winrm channel starts within 3 minutes or not at all');
  assert.equal(await openIntents(dir), []);
});

t.run();
