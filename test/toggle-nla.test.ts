import { gzipSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../scripts/lib/channels.ts';
import { UsageError } from '../scripts/lib/errors.ts';
import { list } from '../scripts/lib/journal.ts';
import { psQuote, RESULT_BEGIN, RESULT_END } from '../scripts/lib/ps.ts';
import { POLICY_KEY, RDP_TCP_KEY } from '../scripts/lib/server-ps.ts';
import type { Runner, StepContext } from '../scripts/lib/server-step.ts';
import { scripted } from './helpers/scripted-runner.ts';
import { applyOrder, buildNlaScript, desiredValues, expiryTaskScript, interpretNla, toggleNla, validateOptions, type NlaRaw } from '../scripts/toggle-nla.ts';
import { fakeBin } from './helpers/fakebin.ts';
import { parseProblems } from './helpers/powershell.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const fx = (n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures/toggle-nla', n), 'utf8')) as NlaRaw;

let dir = '';
const ctxFor = (run: Runner, dryRun = false): StepContext => ({ target: parseTarget('winrm://vm1'), dryRun, journal: dir, run });

const rules = suite('toggle-nla decisions');

rules('modes map to values; moving to TLS sets the encryption level first, everything else the layer first', () => {
  assert.equal(desiredValues({ mode: 'disable' }), { UserAuthentication: 0 });
  assert.equal(desiredValues({ mode: 'set', securityLayer: 'tls', minEncryptionLevel: 2 }), { SecurityLayer: 2, MinEncryptionLevel: 2 });
  assert.equal(applyOrder({ SecurityLayer: 2 }), ['MinEncryptionLevel', 'SecurityLayer', 'UserAuthentication']);
  assert.equal(applyOrder({ SecurityLayer: 1, MinEncryptionLevel: 1 }), ['SecurityLayer', 'MinEncryptionLevel', 'UserAuthentication']);
  assert.match(buildNlaScript({ mode: 'set', securityLayer: 'tls', minEncryptionLevel: 2 }, false), /Order = @\('MinEncryptionLevel', 'SecurityLayer'\)/);
});

rules('invalid requests are refused before anything runs', () => {
  const bad = [
    { mode: 'set', securityLayer: 'tls', minEncryptionLevel: 1 },
    { mode: 'enable', forSeconds: 7200 },
    { mode: 'set', securityLayer: 'negotiate', forSeconds: 3600 },
    { mode: 'status', policy: true },
  ] as const;
  for (const o of bad) assert.throws(() => validateOptions(o), (e: unknown) => e instanceof UsageError, JSON.stringify(o));
  validateOptions({ mode: 'disable', forSeconds: 7200 });
  validateOptions({ mode: 'set', securityLayer: 'rdp', forSeconds: 600 });
  validateOptions({ mode: 'disable', securityLayer: 'rdp', forSeconds: 600 });
});

rules('enable --security-layer rdp is refused with the reason: NLA (CredSSP) needs TLS', () => {
  assert.throws(
    () => validateOptions({ mode: 'enable', securityLayer: 'rdp' }),
    (e: unknown) => e instanceof UsageError && e.exitCode === 2 && /CredSSP, which runs inside TLS/.test(e.message),
  );
});

rules('status names what is in force and where it comes from', () => {
  const r = interpretNla(fx('status-policy.json'), ctxFor(scripted()), { mode: 'status' });
  assert.is(r.status, 'ok');
  assert.is(r.summary, 'in force: NLA required [Group Policy], SecurityLayer Negotiate (1), MinEncryptionLevel 2');
  assert.equal(r.effectiveBefore!.UserAuthentication, { value: 1, source: 'policy' });
});

rules('a Group Policy override is refused, not reported as done, with the --policy command', () => {
  const r = interpretNla(fx('disable-policy-refused.json'), ctxFor(scripted()), { mode: 'disable', forSeconds: 7200 });
  assert.is(r.status, 'failed');
  assert.match(r.summary, /Group Policy sets UserAuthentication = 1/);
  assert.equal(r.next, ['npx tsx scripts/toggle-nla.ts disable --policy --target winrm://vm1']);
});

rules('TypeScript verifies the value in force: a local change the policy still overrides is a failure', () => {
  const raw = fx('disable-changed.json');
  raw.after!.policy = { UserAuthentication: 1 };
  const r = interpretNla(raw, ctxFor(scripted()), { mode: 'disable', forSeconds: 7200 });
  assert.is(r.status, 'failed');
  assert.ok(r.evidence.some((e) => /UserAuthentication in force is 1 \(policy\), not 0/.test(e)));
});

rules('disabling NLA says it is a downgrade; without --for it says how to turn it back on', () => {
  const withExpiry = interpretNla(fx('disable-changed.json'), ctxFor(scripted()), { mode: 'disable', forSeconds: 7200 });
  assert.ok(withExpiry.warnings.some((w) => /security downgrade/.test(w)));
  assert.not.ok(withExpiry.warnings.some((w) => /no expiry/.test(w)));
  assert.match(withExpiry.summary, /puts it back at 2025-06-01T14:00:00/);
  const raw = fx('disable-changed.json');
  raw.task = null;
  const without = interpretNla(raw, ctxFor(scripted()), { mode: 'disable' });
  assert.ok(without.warnings.some((w) => /no expiry is set: re-enable with npx tsx scripts\/toggle-nla\.ts enable --target winrm:\/\/vm1/.test(w)));
  const policy = interpretNla(fx('disable-policy-changed.json'), ctxFor(scripted()), { mode: 'disable', policy: true });
  assert.ok(policy.warnings.some((w) => /re-applies its own value at the next refresh/.test(w)));
  assert.ok(policy.warnings.some((w) => /domain-joined/.test(w)));
});

// ---

const triple = suite('toggleNla: check, apply, again; restore; undo data');
triple.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-nla-'));
});
triple.after.each(() => rmSync(dir, { recursive: true, force: true }));

triple('disable --for 2h: would-change and nothing recorded; changed with the expiry task and an undo; then ok', async () => {
  const o = { mode: 'disable', forSeconds: 7200 } as const;
  const check = await toggleNla(o, ctxFor(scripted(fx('disable-dry-run.json')), true));
  assert.is(check.status, 'would-change');
  assert.match(check.summary, /would set NLA off and register a task that puts it back in 7200 s/);
  assert.equal(await list(dir), []);

  const run = scripted(fx('disable-changed.json'));
  const apply = await toggleNla(o, ctxFor(run));
  assert.is(apply.status, 'changed');
  assert.match(run.scripts[0]!, /ExpirySeconds = 7200/);
  const [e] = await list(dir);
  assert.ok(e);
  assert.match(e.summary, /local UserAuthentication 1→0 \(expires 2025-06-01T14:00:00/);
  assert.is(e.backup, 'C:\\ProgramData\\rdpfix\\backup\\20250601-120000-321-toggle-nla');
  const undo = e.undo as { kind: string; script: string };
  assert.is(undo.kind, 'powershell');
  assert.equal(await parseProblems(undo.script), []);
  assert.ok(undo.script.includes("'UserAuthentication' = [ordered]@{ 'before' = 1; 'after' = 0 }"), 'the undo carries the recorded values');
  assert.match(undo.script, /-RemoveTask -WhatIf:\$P\.DryRun/, 'and removes the expiry task');

  const again = await toggleNla(o, ctxFor(scripted(fx('disable-again-ok.json'))));
  assert.is(again.status, 'ok');
  assert.is((await list(dir)).length, 1);
});

triple('--restore on the target marks the journal entry with that backup as undone', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctxFor(scripted(fx('disable-changed.json'))));
  const r = await toggleNla({ mode: 'restore' }, ctxFor(scripted(fx('restore-changed.json'))));
  assert.is(r.status, 'changed');
  assert.match(r.summary, /^restored: NLA required/);
  const [e] = await list(dir);
  assert.is(e!.undone?.status, 'changed');
  assert.match(e!.undone!.detail!, /toggle-nla --restore/);
  assert.equal(r.journal, [e!.id]);
});

triple('a value someone changed since is kept and reported', async () => {
  const r = await toggleNla({ mode: 'restore' }, ctxFor(scripted(fx('restore-kept.json'))));
  assert.is(r.status, 'ok');
  assert.ok(r.warnings.some((w) => /SecurityLayer is 0 now, not 1 as rdpfix left it: kept/.test(w)));
});

triple('enable removes the expiry task and is journaled', async () => {
  const r = await toggleNla({ mode: 'enable' }, ctxFor(scripted(fx('enable-changed.json'))));
  assert.is(r.status, 'changed');
  assert.match(r.summary, /the expiry task was removed/);
  assert.match((await list(dir))[0]!.summary, /\(expiry task removed\)/);
});

// ---

const task = suite('the expiry task');

task('its command line stays under the 32,767-character limit in the worst case', () => {
  const values = JSON.stringify({ local: { UserAuthentication: { before: 1, after: 0 }, SecurityLayer: { before: 2, after: 0 }, MinEncryptionLevel: { before: 3, after: 2 } }, policy: { UserAuthentication: { before: 1, after: 0 }, SecurityLayer: { before: 2, after: 0 }, MinEncryptionLevel: { before: 4, after: 2 } } });
  const path = `C:\\${'b'.repeat(255)}`;
  // What Register-RdpExpiryTask builds on the target (ConvertTo-RdpLiteral is psQuote's rule).
  const script = `$rdpfixValuesJson = ${psQuote(values)}\r\n$rdpfixBackupPath = ${psQuote(path)}\r\n${expiryTaskScript()}`;
  // ConvertTo-RdpTaskCommand gzips it into a one-line loader (test/windows/toggle-nla.Tests.ps1
  // registers and runs that loader for real); .NET's gzip and zlib's differ by a few bytes, so the
  // bound keeps a wide margin.
  const packed = gzipSync(Buffer.from(script, 'utf8')).toString('base64');
  const loader = `$rdpfixReader = New-Object -TypeName System.IO.StreamReader -ArgumentList (New-Object -TypeName System.IO.Compression.GZipStream -ArgumentList (New-Object -TypeName System.IO.MemoryStream -ArgumentList (,[Convert]::FromBase64String('${packed}'))), ([System.IO.Compression.CompressionMode]::Decompress)), ([System.Text.Encoding]::UTF8)\r\n. ([scriptblock]::Create($rdpfixReader.ReadToEnd()))`;
  const argument = `-NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ${Buffer.from(loader, 'utf16le').toString('base64')}`;
  assert.ok(`powershell.exe ${argument}`.length < 32_767 * 0.75, `${argument.length} characters`);
  const plain = `-EncodedCommand ${Buffer.from(script, 'utf16le').toString('base64')}`;
  assert.ok(plain.length > argument.length * 2, 'the plain script would be more than twice as long');
});

task('it parses, restores through the same function, and the target-side quoting doubles all five quote characters', async () => {
  const s = expiryTaskScript();
  assert.equal(await parseProblems(`$rdpfixValuesJson = '{}'\n$rdpfixBackupPath = 'C:\\x'\n${s}`), []);
  assert.match(s, /Restore-RdpSecuritySetting -Values \(\$rdpfixValuesJson \| ConvertFrom-Json\) -BackupPath \$rdpfixBackupPath -TaskName 'rdpfix-reenable-nla' -RemoveTask/);
  const set = buildNlaScript({ mode: 'disable', forSeconds: 60 }, false);
  assert.ok(set.includes(`-replace "['\\u2018\\u2019\\u201A\\u201B]", '$0$0'`));
  assert.match(set, /New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount/, 'SYSTEM by SID (names are localised)');
  assert.match(set, /New-ScheduledTaskTrigger -Once -At \$At/);
});

task('the keys the PowerShell reads and writes are the ones lib/server-ps.ts names; only the call lines read $P', () => {
  for (const f of ['security', 'toggle-nla']) {
    const ps = readFileSync(join(root, 'scripts/ps', `${f}.ps1`), 'utf8');
    assert.not.ok(/\$P\b/.test(ps), `${f}.ps1: functions take parameters`);
    for (const key of ps.match(/'HKLM:?\\[^']*'/g) ?? []) assert.ok([psQuote(RDP_TCP_KEY), psQuote(POLICY_KEY), psQuote(RDP_TCP_KEY.replace(':', '')), psQuote(POLICY_KEY.replace(':', ''))].includes(key), `${f}.ps1: ${key}`);
  }
  const security = readFileSync(join(root, 'scripts/ps/security.ps1'), 'utf8');
  assert.ok(security.includes(`-Path ${psQuote(RDP_TCP_KEY)}`) && security.includes(`-Path ${psQuote(POLICY_KEY)}`));
  assert.not.ok(/Set-RdpSecuritySetting|Register-RdpExpiryTask/.test(expiryTaskScript()), 'the expiry task only restores');
});

// ---

const cli = suite('toggle-nla CLI');

const run = (args: string[], path?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/toggle-nla.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...(path ? { PATH: `${path}:${process.env.PATH}` } : {}) },
  });

cli('bad modes, values and combinations: exit 2, nothing run', () => {
  const fb = fakeBin(['pwsh']);
  try {
    for (const args of [
      ['off'],
      ['disable', '--for', '2 hours'],
      ['disable', '--for', '10s'],
      ['enable', '--for', '2h'],
      ['--security-layer', 'ssl'],
      ['--security-layer', 'tls', '--min-encryption-level', '1'],
      ['--min-encryption-level', '5'],
      ['--restore', 'enable'],
      ['status', '--policy'],
      ['disable', '--backup-dir', 'C:\\a?b'],
      ['enable', '--security-layer', 'rdp'],
    ]) {
      const r = run([...args, '--target', 'winrm://vm1', '--json'], fb.dir);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    }
    assert.not.ok(existsSync(join(fb.dir, 'pwsh.argv')), 'pwsh was never started');
  } finally {
    fb.remove();
  }
});

cli('--emit prints exactly the script; "status --security-layer X" (the recipe form) sets only the layer', () => {
  let r = run(['disable', '--for', '2h', '--emit']);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, buildNlaScript({ mode: 'disable', forSeconds: 7200, policy: false }, false));
  r = run(['status', '--security-layer', 'negotiate', '--emit', '--dry-run']);
  assert.is(r.stdout, buildNlaScript({ mode: 'set', securityLayer: 'negotiate', policy: false }, true));
  assert.match(r.stdout, /Desired = \[ordered\]@\{ 'SecurityLayer' = 1 \}/);
  r = run(['--emit']);
  assert.is(r.stdout, buildNlaScript({ mode: 'status', policy: false }, false));
  assert.not.ok(/Set-RdpSecuritySetting/.test(r.stdout), 'status is read-only');
});

rules.run();
triple.run();
task.run();
cli.run();

// --- --restore goes through lib/undo.ts (the journal entry's own undo), the target-side restore
// only without one; every report carries the step contract (lib/report.ts).

// This file's seal key, so the journal tests below neither need nor touch ~/.rdpfix/journal.key.
const keyDir = mkdtempSync(join(tmpdir(), 'rdpfix-nla-key-'));
process.env.RDPFIX_JOURNAL_KEY = join(keyDir, 'journal.key');
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));

const restoreAnswer = (): NlaRaw => {
  const raw = fx('restore-changed.json');
  delete raw.restoredFrom; // Restore-RdpSecuritySetting (the journal's undo) does not say where from
  return raw;
};

function contract(r: Record<string, unknown>, what: string) {
  assert.ok(['ok', 'changed', 'would-change', 'failed', 'skipped'].includes(r.status as string), `${what}: status ${String(r.status)}`);
  assert.type(r.summary, 'string', `${what}: summary`);
  assert.not.ok(/[\r\n]/.test(r.summary as string), `${what}: one line`);
  assert.is(r.cause, null, `${what}: cause`);
  for (const k of ['evidence', 'next', 'notes']) assert.ok(Array.isArray(r[k]) && (r[k] as unknown[]).every((x) => typeof x === 'string'), `${what}: ${k}`);
  assert.ok(Array.isArray(r.changes) && (r.changes as Array<{ summary?: unknown }>).every((c) => typeof c.summary === 'string'), `${what}: changes`);
}

const restore = suite('toggle-nla --restore: the journal first (lib/undo.ts), the target-side backup as the fallback');
restore.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-nla-restore-'));
});
restore.after.each(() => rmSync(dir, { recursive: true, force: true }));

restore('with an open journal entry it runs exactly that entry\'s recorded undo, marks it, and journals the undo as undo ID would', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctxFor(scripted(fx('disable-changed.json'))));
  const [made] = await list(dir);
  const run = scripted(restoreAnswer());
  const r = await toggleNla({ mode: 'restore' }, ctxFor(run));
  assert.is(r.status, 'changed');
  assert.equal(run.scripts, [(made!.undo as { script: string }).script], 'the recorded undo, not the target-side Restore-RdpLatestSetting');
  assert.not.ok(run.scripts[0]!.includes('Restore-RdpLatestSetting'));
  assert.match(r.summary, /^restored: NLA required/);
  assert.equal(r.journal, [made!.id]);
  assert.ok(r.notes.some((n) => n.startsWith(`restored from the journal: journal entry ${made!.id}`)), r.notes.join('\n'));
  const all = await list(dir);
  assert.is(all.length, 2);
  assert.equal([all[0]!.undone?.status, all[0]!.undone?.detail], ['changed', 'undone by toggle-nla --restore']);
  assert.equal([all[1]!.script, all[1]!.target], ['undo', 'winrm://vm1']);
  assert.match(all[1]!.summary, new RegExp(`^undo of ${made!.id} \\(toggle-nla\\) by toggle-nla --restore: changed`));
  assert.ok(r.evidence.some((e) => e.includes(`this undo is journal entry ${all[1]!.id}`)));
  assert.equal(r.changes.map((c) => c.summary), ['local UserAuthentication 0 → 1', 'removed the expiry task']);
  contract(r, 'restore from the journal');
});

restore('the newest open entry only: an older change stays open for the next --restore', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctxFor(scripted(fx('disable-changed.json'))));
  await toggleNla({ mode: 'enable' }, ctxFor(scripted(fx('enable-changed.json'))));
  const [older, newer] = await list(dir);
  const run = scripted(restoreAnswer());
  await toggleNla({ mode: 'restore' }, ctxFor(run));
  assert.equal(run.scripts, [(newer!.undo as { script: string }).script]);
  const after = await list(dir);
  assert.equal([after.find((e) => e.id === newer!.id)?.undone?.status, after.find((e) => e.id === older!.id)?.undone], ['changed', undefined]);
});

restore('no journal entry: the target restores its own newest backup, and the report says so', async () => {
  const run = scripted(fx('restore-changed.json'));
  const r = await toggleNla({ mode: 'restore' }, ctxFor(run));
  assert.is(r.status, 'changed');
  assert.match(run.scripts[0]!, /\$Result = Restore-RdpLatestSetting /);
  assert.ok(r.notes.some((n) => /has no toggle-nla change on winrm:\/\/vm1 that is not undone yet .*: so the target restores its own newest toggle-nla backup/.test(n)), r.notes.join('\n'));
  assert.equal(await list(dir), [], 'nothing to mark, nothing journaled');
  contract(r, 'target-side restore');
});

restore('an entry on another target is not this target\'s: the fallback runs', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, { target: parseTarget('winrm://vm2'), dryRun: false, journal: dir, run: scripted(fx('disable-changed.json')) });
  const run = scripted(fx('restore-kept.json'));
  const r = await toggleNla({ mode: 'restore' }, ctxFor(run));
  assert.match(run.scripts[0]!, /Restore-RdpLatestSetting/);
  assert.is(r.status, 'ok');
  assert.is((await list(dir))[0]!.undone, undefined, 'vm2\'s entry is untouched');
});

restore('a journal entry whose undo the allow-list refuses (edited since) runs nothing and fails, as undo ID would', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctxFor(scripted(fx('disable-changed.json'))));
  const [made] = await list(dir);
  const file = join(dir, `${made!.id}.json`);
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { undo: { script: string } };
  doc.undo.script = 'Remove-Item -LiteralPath C:\\ -Recurse';
  writeFileSync(file, JSON.stringify(doc));
  const run = scripted();
  const r = await toggleNla({ mode: 'restore' }, ctxFor(run));
  assert.is(r.status, 'failed');
  assert.match(r.summary, /^refused, nothing run: its PowerShell undo does not carry this rdpfix's seal/);
  assert.equal(run.scripts, [], 'the channel was never used');
  assert.is((await list(dir))[0]!.undone, undefined);
  contract(r, 'refused');
});

restore('--dry-run with a journal entry checks the allow-list only: no target contact, nothing marked, the recorded values as would-change', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctxFor(scripted(fx('disable-changed.json'))));
  const [made] = await list(dir);
  const run = scripted();
  const r = await toggleNla({ mode: 'restore' }, ctxFor(run, true));
  assert.is(r.status, 'would-change');
  assert.equal(run.scripts, []);
  assert.match(r.summary, new RegExp(`^would put back NLA required from journal entry ${made!.id}$`));
  assert.equal(r.changes, [{ summary: 'local UserAuthentication 0 → 1', scope: 'local', name: 'UserAuthentication', before: 0, after: 1 }]);
  assert.equal((await list(dir)).map((e) => e.undone), [undefined]);
  contract(r, 'dry run');
});

restore('a failed undo on the target leaves the entry open and names the retry', async () => {
  await toggleNla({ mode: 'disable', forSeconds: 7200 }, ctxFor(scripted(fx('disable-changed.json'))));
  const r = await toggleNla({ mode: 'restore' }, ctxFor(scripted({ step: 'toggle-nla', mode: 'restore', status: 'failed', error: 'Access is denied', before: fx('restore-changed.json').before })));
  assert.is(r.status, 'failed');
  assert.match(r.summary, /Access is denied/);
  assert.equal(r.next, ['npx tsx scripts/toggle-nla.ts --restore --target winrm://vm1']);
  const [e] = await list(dir);
  assert.is(e!.undone, undefined);
});

restore('every mode\'s report carries the step contract; a dry run lists the planned changes', async () => {
  const cases: Array<[string, Parameters<typeof toggleNla>[0], NlaRaw, boolean]> = [
    ['status', { mode: 'status' }, fx('status-policy.json'), false],
    ['disable --dry-run', { mode: 'disable', forSeconds: 7200 }, fx('disable-dry-run.json'), true],
    ['disable', { mode: 'disable', forSeconds: 7200 }, fx('disable-changed.json'), false],
    ['refused by policy', { mode: 'disable', forSeconds: 7200 }, fx('disable-policy-refused.json'), false],
    ['enable', { mode: 'enable' }, fx('enable-changed.json'), false],
  ];
  for (const [what, o, raw, dry] of cases) {
    const r = await toggleNla(o, ctxFor(scripted(raw), dry));
    contract(r, what);
    if (what === 'disable --dry-run') assert.equal(r.changes.map((c) => c.summary), ['local UserAuthentication 1 → 0'], what);
    if (what === 'disable') assert.ok(r.changes[0]!.summary === 'local UserAuthentication 1 → 0' && /^registered the expiry task rdpfix-reenable-nla/.test(r.changes[1]!.summary), JSON.stringify(r.changes));
    if (what === 'status') assert.equal(r.changes, [], 'read-only');
  }
});

restore('CLI: --restore --json with an empty journal is one contract document through the channel, naming the fallback', () => {
  const fb = fakeBin(['ssh']);
  try {
    fb.answer('ssh', `${RESULT_BEGIN}\n${JSON.stringify(fx('restore-kept.json'))}\n${RESULT_END}\n`);
    const r = run(['--restore', '--target', 'ssh://admin@vm1', '--journal', dir, '--json'], fb.dir);
    assert.is(r.status, 0, r.stdout + r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    contract(doc, 'CLI');
    assert.is(doc.status, 'ok');
    assert.ok((doc.notes as string[]).some((n) => /so the target restores its own newest toggle-nla backup/.test(n)));
    assert.match(fb.stdin('ssh'), /Restore-RdpLatestSetting/);
  } finally {
    fb.remove();
  }
});

restore.run();
