import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../../scripts/lib/channels.ts';
import { StepError, UsageError } from '../../scripts/lib/errors.ts';
import type { JournalEntry } from '../../scripts/lib/journal.ts';
import {
  asArray,
  attachJournal,
  baseReport,
  bytesToHex,
  dword,
  nextCommand,
  psDate,
  runStep,
  serverFlags,
  serverMain,
  serviceStatus,
  startType,
  targetPath,
} from '../../scripts/lib/server-step.ts';

const fixture = (n: string) => JSON.parse(readFileSync(new URL(`../fixtures/inspect-server/${n}`, import.meta.url), 'utf8')) as unknown;

/** Capture what a function writes to stdout. */
async function stdout(fn: () => Promise<unknown>): Promise<{ out: string; value: unknown }> {
  const orig = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { value: await fn(), out };
  } finally {
    process.stdout.write = orig;
  }
}

const norm = suite('normalising Windows PowerShell 5.1 JSON');

norm('Get-Service enums written as numbers become names; one service is a bare object', () => {
  const many = asArray<{ Name: string; Status: number; StartType: number }>(fixture('get-service.json'));
  assert.equal(many.map((s) => [s.Name, serviceStatus(s.Status), startType(s.StartType)]), [
    ['SessionEnv', 'Running', 'Manual'],
    ['TermService', 'Running', 'Manual'],
    ['UmRdpService', 'Running', 'Manual'],
  ]);
  const one = asArray<{ Status: number; StartType: number }>(fixture('get-service-single.json'));
  assert.is(one.length, 1);
  assert.is(serviceStatus(one[0]!.Status), 'Stopped');
  assert.is(startType(one[0]!.StartType), 'Disabled');
  assert.is(serviceStatus('Running'), 'Running', 'PowerShell 7 with -EnumsAsStrings');
  assert.equal(asArray(null), []);
});

norm('dates in both ConvertTo-Json forms', () => {
  const cert = fixture('cert-remote-desktop.json') as { NotAfter: string };
  assert.is(cert.NotAfter, '/Date(1751328000000)/', 'JSON.parse turns \\/ into /');
  assert.is(psDate(cert.NotAfter)!.toISOString(), '2025-07-01T00:00:00.000Z');
  assert.is(psDate('2025-07-01T00:00:00+00:00')!.toISOString(), '2025-07-01T00:00:00.000Z');
  assert.is(psDate('/Date(1751328000000+0200)/')!.getTime(), 1751328000000);
  assert.is(psDate('not a date'), null);
  assert.is(psDate(42), null);
});

norm('REG_BINARY as a byte array becomes a thumbprint; DWORDs are read only when present', () => {
  assert.is(bytesToHex([0x5c, 0x1e, 0, 255]), '5C1E00FF');
  assert.is(bytesToHex([300]), null);
  assert.is(dword({ UserAuthentication: 0 }, 'UserAuthentication'), 0, 'zero is a value');
  assert.is(dword({}, 'UserAuthentication'), undefined, 'absent is not zero');
  assert.is(dword(null, 'x'), undefined);
});

// ---

const flags = suite('shared flags and helpers');

flags('serverFlags validates the target and the journal folder; local is the default', () => {
  assert.equal(serverFlags({}).target, { kind: 'local' });
  assert.is(serverFlags({ target: 'winrm://vm1' }).targetText, 'winrm://vm1');
  assert.throws(() => serverFlags({ target: 'winrm://vm1;calc' }), (e: unknown) => e instanceof UsageError);
  assert.throws(() => serverFlags({ journal: 'a\nb' }), (e: unknown) => e instanceof UsageError);
});

flags('targetPath accepts only Windows paths a script may embed', () => {
  assert.is(targetPath('C:\\ProgramData\\rdpfix\\backup\\x'), 'C:\\ProgramData\\rdpfix\\backup\\x');
  for (const bad of ['relative\\x', 'C:\\a\\..\\b', 'C:\\x"; calc', 42, null]) assert.is(targetPath(bad), null, String(bad));
});

flags('the undo command names one entry, or the run when a step recorded several', () => {
  const ctx = { target: parseTarget('winrm://vm1'), dryRun: false };
  const e = (id: string) => ({ id, runId: 'run-1' }) as JournalEntry;
  const r1 = baseReport('x', ctx);
  attachJournal(r1, [e('a')], ctx);
  assert.is(r1.undo, 'npx tsx scripts/undo.ts a --yes');
  const r2 = baseReport('x', ctx);
  attachJournal(r2, [e('a'), e('b')], { ...ctx, journal: '/tmp/j' });
  assert.is(r2.undo, 'npx tsx scripts/undo.ts --run run-1 --yes --journal "/tmp/j"');
  assert.is(nextCommand('toggle-nla', ['enable'], ctx), 'npx tsx scripts/toggle-nla.ts enable --target winrm://vm1');
  assert.is(nextCommand('toggle-nla', ['enable'], { target: { kind: 'local' }, dryRun: false }), 'npx tsx scripts/toggle-nla.ts enable');
});

flags('runStep refuses a result without a status', async () => {
  const ctx = { target: parseTarget('winrm://vm1'), dryRun: false, run: async () => ({ nothing: true }) };
  await runStep(ctx, 'x').then(
    () => assert.unreachable('should fail'),
    (e: unknown) => assert.instance(e, StepError),
  );
});

// ---

const main = suite('serverMain: run or emit, one JSON object');

main('--emit prints exactly the script and runs nothing', async () => {
  let ran = false;
  const { out, value } = await stdout(() =>
    serverMain(
      { ...serverFlags({ target: 'winrm://vm1' }), emit: true },
      { title: 't', emit: (dry) => `script dry=${dry}\n`, execute: async () => ((ran = true), baseReport('t', { target: { kind: 'local' }, dryRun: false })) },
    ),
  );
  assert.is(value, 0);
  assert.is(out, 'script dry=false\n');
  assert.not.ok(ran);
});

main('a channel failure is one JSON object with status failed (exit 1), not a crash', async () => {
  const { out, value } = await stdout(() =>
    serverMain({ ...serverFlags({ target: 'winrm://vm1' }), json: true }, { title: 'toggle-nla', emit: () => '', execute: async () => { throw new StepError('winrm://vm1: no rdpfix result in the output', 'tail'); } }),
  );
  assert.is(value, 1);
  const lines = out.trim().split('\n');
  assert.is(lines.length, 1);
  const doc = JSON.parse(lines[0]!) as { status: string; error: string; target: string };
  assert.is(doc.status, 'failed');
  assert.match(doc.error, /no rdpfix result/);
  assert.is(doc.target, 'winrm://vm1');
});

norm.run();
flags.run();
main.run();
