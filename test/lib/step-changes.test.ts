// lib/step-changes.ts: for each changing step, a recorded raw result gives through stepChanges the
// SAME journal changes (summary, before, after, backup, undo with its generated PowerShell) that the
// step's own exported function journals after a run on that result (fake runner, temp journal), so
// this fails the moment a step and the rebuild of its changes (undo --reconcile) drift apart.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { clearMachineKeys, type ClearOptions } from '../../scripts/clear-machinekeys.ts';
import { setRdpUdp } from '../../scripts/disable-rdp-udp.ts';
import { parseTarget } from '../../scripts/lib/channels.ts';
import { isIntent, list } from '../../scripts/lib/journal.ts';
import type { StepContext } from '../../scripts/lib/server-step.ts';
import { isMutatingStep, MUTATING_STEPS, stepChanges, type MutatingStep } from '../../scripts/lib/step-changes.ts';
import { setInterfaceMtu } from '../../scripts/lower-mtu.ts';
import { restartTermserv, type RestartOptions } from '../../scripts/restart-termserv.ts';
import { toggleNla, type NlaOptions } from '../../scripts/toggle-nla.ts';
import { fakeBin } from '../helpers/fakebin.ts';
import { scripted } from '../helpers/scripted-runner.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fx = (dir: string, n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures', dir, n), 'utf8')) as Record<string, unknown>;
const text = (dir: string, n: string) => readFileSync(join(root, 'test/fixtures', dir, n), 'utf8');
const resultOf = (t: string) => JSON.parse(/##rdpfix-result-begin##\s*([\s\S]*?)\s*##rdpfix-result-end##/.exec(t)![1]!) as Record<string, unknown>;

// This file's seal key and journals: nothing under ~/.rdpfix is read or written.
const work = mkdtempSync(join(tmpdir(), 'rdpfix-step-changes-'));
process.env.RDPFIX_JOURNAL_KEY = join(work, 'journal.key');
let n = 0;
const freshJournal = () => join(work, `journal-${++n}`);

/** What a run journaled, as the journal holds it (intent entries are bookkeeping, not changes). */
async function journaled(journal: string) {
  return (await list(journal)).filter((e) => !isIntent(e)).sort((a, b) => a.id.localeCompare(b.id)).map((e) => ({ summary: e.summary, before: e.before, after: e.after, backup: e.backup, undo: e.undo }));
}
/** stepChanges' answer as the journal would hold it (a JSON document on disk). */
const asStored = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

const same = suite('stepChanges gives what each step journals');

const server: Array<{ step: MutatingStep; dir: string; file: string; options: Record<string, unknown>; run: (o: never, ctx: StepContext) => Promise<unknown>; count: number }> = [
  { step: 'toggle-nla', dir: 'toggle-nla', file: 'disable-changed.json', options: { mode: 'disable', forSeconds: 7200 } satisfies NlaOptions, run: toggleNla as never, count: 1 },
  { step: 'toggle-nla', dir: 'toggle-nla', file: 'enable-changed.json', options: { mode: 'enable' } satisfies NlaOptions, run: toggleNla as never, count: 1 },
  { step: 'toggle-nla', dir: 'toggle-nla', file: 'disable-policy-changed.json', options: { mode: 'disable', policy: true } satisfies NlaOptions, run: toggleNla as never, count: 1 },
  { step: 'restart-termserv', dir: 'restart-termserv', file: 'regenerate-changed.json', options: { regenerateCert: true, timeoutSeconds: 120 } satisfies RestartOptions, run: restartTermserv as never, count: 1 },
  { step: 'restart-termserv', dir: 'restart-termserv', file: 'regenerate-failed.json', options: { regenerateCert: true } satisfies RestartOptions, run: restartTermserv as never, count: 1 },
  { step: 'clear-machinekeys', dir: 'clear-machinekeys', file: 'repair-regenerated.json', options: { timeoutSeconds: 90 } satisfies ClearOptions, run: clearMachineKeys as never, count: 2 },
  { step: 'clear-machinekeys', dir: 'clear-machinekeys', file: 'repair-changed.json', options: {} satisfies ClearOptions, run: clearMachineKeys as never, count: 1 },
  { step: 'clear-machinekeys', dir: 'clear-machinekeys', file: 'rename-changed.json', options: { renameFolder: true, force: true, disconnectSessions: true } satisfies ClearOptions, run: clearMachineKeys as never, count: 1 },
];

for (const c of server) {
  same(`${c.step} on ${c.dir}/${c.file}: the ${c.count} change(s) journaled`, async () => {
    const journal = freshJournal();
    const ctx: StepContext = { target: parseTarget('winrm://vm1'), dryRun: false, journal, run: scripted(fx(c.dir, c.file)) };
    await c.run(c.options as never, ctx);
    const recorded = await journaled(journal);
    assert.is(recorded.length, c.count, 'the fixture makes the step journal something (else the comparison proves nothing)');
    const rebuilt = stepChanges(c.step, fx(c.dir, c.file), { target: parseTarget('winrm://vm1'), dryRun: false }, c.options);
    assert.equal(asStored(rebuilt), recorded);
  });
}

same('disable-rdp-udp on apply.txt (through a fake WinRM pwsh): the change journaled', async () => {
  const fb = fakeBin(['pwsh']);
  const restore = fb.install();
  try {
    const journal = freshJournal();
    fb.answer('pwsh', text('disable-rdp-udp', 'apply.txt'));
    const r = await setRdpUdp({ target: 'winrm://client01', journalDir: journal, backupDir: 'D:\\rdpfix-backup' });
    assert.is(r.status, 'changed');
    const recorded = await journaled(journal);
    assert.is(recorded.length, 1);
    const rebuilt = stepChanges('disable-rdp-udp', resultOf(text('disable-rdp-udp', 'apply.txt')), { target: parseTarget('winrm://client01'), dryRun: false }, { backupDir: 'D:\\rdpfix-backup', target: 'winrm://client01' });
    assert.equal(asStored(rebuilt), recorded);
  } finally {
    restore();
    fb.remove();
  }
});

// Set-RdpInterfaceMtu's result in the shape scripts/ps/lower-mtu.ps1 builds (there is no recorded
// Windows result for it in test/fixtures).
const mtuRaw = { step: 'lower-mtu', status: 'changed', interface: 'Ethernet 2', interfaceIndex: 7, before: 1500, after: 1400, store: 'active', backup: 'C:\\ProgramData\\rdpfix\\backup\\20250301-101502-lower-mtu\\lower-mtu.json' };

same('lower-mtu --temporary on Windows (fake runner): the change journaled; a record\'s store=active means the same', async () => {
  const journal = freshJournal();
  const r = await setInterfaceMtu({ interface: 'Ethernet 2', mtu: 1400, temporary: true, platform: 'win32', journalDir: journal, run: scripted(mtuRaw) });
  assert.is(r.status, 'changed');
  const recorded = await journaled(journal);
  assert.is(recorded.length, 1);
  const local: StepContext = { target: { kind: 'local' }, dryRun: false };
  assert.equal(asStored(stepChanges('lower-mtu', mtuRaw, local, { interface: 'Ethernet 2', mtu: 1400, temporary: true })), recorded);
  // A target record holds { backupDir, mtu, store, interface } (scripts/ps/lower-mtu.ps1).
  assert.equal(asStored(stepChanges('lower-mtu', mtuRaw, local, { interface: 'Ethernet 2', mtu: 1400, store: 'active', backupDir: 'C:\\ProgramData\\rdpfix\\backup' })), recorded);
});

const edges = suite('stepChanges: what it refuses, and what journals nothing');

edges('an unknown step name throws, naming the steps it knows', () => {
  assert.throws(() => stepChanges('inspect-server' as MutatingStep, { status: 'ok' }, { target: { kind: 'local' }, dryRun: false }), (e: Error) => e.message.includes('unknown step "inspect-server"') && MUTATING_STEPS.every((s) => e.message.includes(s)));
});

edges('MUTATING_STEPS and its guard', () => {
  assert.equal([...MUTATING_STEPS], ['toggle-nla', 'restart-termserv', 'clear-machinekeys', 'disable-rdp-udp', 'lower-mtu']);
  assert.ok(MUTATING_STEPS.every(isMutatingStep));
  for (const v of ['inspect-server', 'undo', '', 'TOGGLE-NLA', null, 3, {}]) assert.not.ok(isMutatingStep(v), String(v));
});

edges('a raw that is not an object, and an option of the wrong type, throw', () => {
  const ctx: StepContext = { target: parseTarget('winrm://vm1'), dryRun: false };
  assert.throws(() => stepChanges('toggle-nla', null, ctx), /raw result must be a JSON object/);
  assert.throws(() => stepChanges('toggle-nla', [], ctx), /raw result must be a JSON object/);
  assert.throws(() => stepChanges('restart-termserv', fx('restart-termserv', 'regenerate-changed.json'), ctx, { timeoutSeconds: '60' }), /options\.timeoutSeconds must be a number/);
  assert.throws(() => stepChanges('lower-mtu', mtuRaw, { target: { kind: 'local' }, dryRun: false }, { mtu: 1400 }), /options\.interface and options\.mtu are required/);
  assert.throws(() => stepChanges('lower-mtu', mtuRaw, ctx, { interface: 'Ethernet 2', mtu: 1400 }), /this machine's interface only/);
  assert.throws(() => stepChanges('disable-rdp-udp', resultOf(text('disable-rdp-udp', 'apply.txt')), ctx, { target: 'winrm://other' }), /is not the context's target/);
});

edges('a dry run, a would-change or ok result, and a --restore journal nothing', () => {
  const ctx: StepContext = { target: parseTarget('winrm://vm1'), dryRun: false };
  assert.equal(stepChanges('toggle-nla', fx('toggle-nla', 'disable-changed.json'), { ...ctx, dryRun: true }), []);
  assert.equal(stepChanges('toggle-nla', fx('toggle-nla', 'disable-dry-run.json'), ctx, { mode: 'disable' }), []);
  assert.equal(stepChanges('toggle-nla', fx('toggle-nla', 'restore-changed.json'), ctx, { mode: 'restore' }), []);
  assert.equal(stepChanges('toggle-nla', fx('toggle-nla', 'restore-changed.json'), ctx), [], 'the result\'s own mode decides without options');
  assert.equal(stepChanges('restart-termserv', fx('restart-termserv', 'restart-changed.json'), ctx), [], 'a plain restart has nothing to undo');
  assert.equal(stepChanges('disable-rdp-udp', resultOf(text('disable-rdp-udp', 'again.txt')), ctx), []);
  assert.equal(stepChanges('lower-mtu', { ...mtuRaw, status: 'ok' }, { target: { kind: 'local' }, dryRun: false }, { interface: 'Ethernet 2', mtu: 1400 }), []);
});

same.run();
edges.run();
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
