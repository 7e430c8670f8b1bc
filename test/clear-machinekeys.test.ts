import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildClearScript, clearChanges, clearMachineKeys, describeEvidence, interpretClear, RENAME_WARNING, verifyRepair, type ClearRaw } from '../scripts/clear-machinekeys.ts';
import { parseTarget } from '../scripts/lib/channels.ts';
import { UsageError } from '../scripts/lib/errors.ts';
import { list } from '../scripts/lib/journal.ts';
import type { Runner, StepContext } from '../scripts/lib/server-step.ts';
import { scripted } from './helpers/scripted-runner.ts';
import { readPsFile } from '../scripts/lib/ps-loader.ts';
import { psQuote } from '../scripts/lib/ps.ts';
import { RD_STORE, RDP_CONTAINER_PREFIX } from '../scripts/lib/server-ps.ts';
import { fakeBin } from './helpers/fakebin.ts';
import { parseProblems } from './helpers/powershell.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const fx = (n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures/clear-machinekeys', n), 'utf8')) as ClearRaw;
/** The certificate and restart step's PowerShell (what the ACL undo must not carry). */
const RESTART_PS = [...readPsFile('certificate').functions, ...readPsFile('restart-termserv').functions].map((f) => f.text).join('\n\n');
const KEY = 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c';

let dir = '';
const ctxFor = (run: Runner, dryRun = false): StepContext => ({ target: parseTarget('azure://sub-1/rg-web/web-01'), dryRun, journal: dir, run });

const decide = suite('interpretClear: evidence, verification, report');

decide('no evidence: ok, nothing changed, and nothing recorded', () => {
  const r = interpretClear(fx('no-evidence-ok.json'), ctxFor(scripted()));
  assert.is(r.status, 'ok');
  assert.match(r.summary, /no evidence/);
  assert.equal(clearChanges(fx('no-evidence-ok.json'), ctxFor(scripted())), []);
});

decide('the evidence is named, and the findings match inspect-server\'s', () => {
  const r = interpretClear(fx('repair-dry-run.json'), ctxFor(scripted(), true));
  assert.is(r.status, 'would-change');
  assert.match(r.summary, new RegExp(`would back up and repair the MachineKeys folder ACL, ${KEY}`));
  assert.match(r.evidence[0]!, /NETWORK SERVICE cannot read the RDP key container f686/);
  assert.match(r.evidence[0]!, /event 36870 \(Schannel: cannot access the private key\)/);
  assert.ok(r.findings.some((f) => f.severity === 'problem' && /NETWORK SERVICE \(TermService\) cannot read the key container/.test(f.detail)), 'the key SDDL is found by its name');
  assert.is(describeEvidence('folder-acl'), 'the MachineKeys folder ACL differs from the default');
});

decide('TypeScript re-checks every repaired descriptor: a container still missing NETWORK SERVICE is a failure', () => {
  const raw = fx('repair-changed.json');
  assert.equal(verifyRepair(raw), []);
  const broken = structuredClone(raw);
  (broken.changed!.containers as Array<{ after: string }>)[0]!.after = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)';
  broken.changed!.folder!.after = 'O:SYG:SYD:PAI(A;;FA;;;SY)';
  const v = verifyRepair(broken);
  assert.is(v.length, 2);
  const r = interpretClear(broken, ctxFor(scripted()));
  assert.is(r.status, 'failed');
  assert.match(r.summary, /NETWORK SERVICE missing/);
});

decide('a repair whose restart leaves the handshake broken: failed with the cause, the restart\'s warnings kept, and the next rung named', () => {
  const raw = fx('repair-changed.json');
  const problem = 'after the change the RDP handshake from the server itself is certificate-key-unusable: 127.0.0.1:3389: the server chose TLS, then closed the connection';
  Object.assign(raw, {
    status: 'failed',
    problems: [`restart failed: ${problem}`],
    handshake: { cause: 'certificate-key-unusable', detail: '127.0.0.1:3389: the server chose TLS, then closed the connection', attempts: 3 },
  });
  raw.restart = { ...raw.restart!, status: 'failed', warnings: ['the new key\'s ACL could not be read by this account'], handshake: { cause: 'certificate-key-unusable', attempts: 3 } };
  const r = interpretClear(raw, ctxFor(scripted()));
  assert.is(r.status, 'failed');
  assert.is(r.cause, 'certificate-key-unusable');
  assert.ok(r.warnings.includes('the new key\'s ACL could not be read by this account'), r.warnings.join('\n'));
  assert.equal(r.next, ['npx tsx scripts/restart-termserv.ts --regenerate-cert --target azure://sub-1/rg-web/web-01']);
  // Another failure with a non-healthy check beside it does not take the check's cause.
  const other = fx('repair-changed.json');
  Object.assign(other, { status: 'failed', problems: ['the new key is not usable by TermService'], handshake: { cause: 'security-layer-mismatch', detail: 'x', attempts: 1 } });
  assert.is(interpretClear(other, ctxFor(scripted())).cause, null);
});

decide('an administrator token that cannot read a 2019 key ACL is told to run as SYSTEM', () => {
  const r = interpretClear(fx('admin-refused.json'), ctxFor(scripted()));
  assert.is(r.status, 'failed');
  assert.match(r.summary, /run this as SYSTEM/);
  assert.equal(r.next, [], 'no placeholder command in next');
  assert.ok(r.notes.some((n) => /Azure Run Command runs as SYSTEM \(npx tsx scripts\/clear-machinekeys\.ts --target azure:\/\/SUB\/RG\/VM\)/.test(n)), r.notes.join('\n'));
  assert.not.ok(JSON.stringify(r).includes('Serial Console'), 'the Serial Console takes 2,048 characters per paste: never offered for this script');
});

decide('evidence found, but other users are signed in: refused before any change, with who and the command with --force', () => {
  const raw = fx('admin-refused.json');
  raw.error = 'restarting TermService disconnects 1 session(s): CONTOSO\\alice (session 2, Active, from LAPTOP-17). Pass --force to restart anyway';
  raw.refused = 'sessions';
  raw.sessions = { own: 0, count: 1, list: [{ id: 2, user: 'CONTOSO\\alice', state: 'Active', client: 'LAPTOP-17', station: 'RDP-Tcp#3' }], error: null };
  const r = interpretClear(raw, ctxFor(scripted()));
  assert.is(r.status, 'failed');
  assert.match(r.summary, /^refused: the repair ends with a TermService restart, which disconnects CONTOSO\\alice \(session 2, Active, from LAPTOP-17\); nothing was changed/);
  assert.equal(r.next, ['npx tsx scripts/clear-machinekeys.ts --force --target azure://sub-1/rg-web/web-01']);
  const script = buildClearScript({ disconnectSessions: true }, false);
  assert.match(script, /^ {4}DisconnectSessions = \$true$/m);
  const repair = script.slice(script.indexOf('function Repair-RdpMachineKey'));
  assert.ok(repair.indexOf('Assert-RdpSessionFree') < repair.indexOf('Backup-RdpMachineKeyAcl'), 'sessions are judged before the backup and the ACL change');
});

decide('--rename-folder is reported with its warning about every other service\'s keys', () => {
  const r = interpretClear(fx('rename-changed.json'), ctxFor(scripted()), { renameFolder: true, force: true });
  assert.is(r.status, 'changed');
  assert.match(r.summary, /MachineKeys renamed to .*MachineKeys_old_20250601-120000/);
  assert.ok(r.warnings.some((w) => /IIS, SQL Server .*\(37 other files\)/.test(w)));
});

// ---

const triple = suite('clearMachineKeys: check, apply, again (idempotency triple) and the journal');
triple.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-clear-'));
});
triple.after.each(() => rmSync(dir, { recursive: true, force: true }));

triple('dry run: would-change, nothing recorded; apply: changed, the ACL undo recorded; again: ok', async () => {
  const check = await clearMachineKeys({}, ctxFor(scripted(fx('repair-dry-run.json')), true));
  assert.is(check.status, 'would-change');
  assert.equal(await list(dir), []);

  const apply = await clearMachineKeys({}, ctxFor(scripted(fx('repair-changed.json'))));
  assert.is(apply.status, 'changed');
  const entries = await list(dir);
  assert.is(entries.length, 1);
  const e = entries[0]!;
  assert.equal([e.script, e.target], ['clear-machinekeys', 'azure://sub-1/rg-web/web-01']);
  assert.is(e.backup, 'C:\\ProgramData\\rdpfix\\backup\\20250601-120000-456-clear-machinekeys');
  const undo = e.undo as { kind: string; script: string };
  assert.is(undo.kind, 'powershell');
  assert.equal(await parseProblems(undo.script), []);
  assert.ok(undo.script.includes("'sddl' = 'O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)'; 'directory' = $true"), 'the folder goes back to what it was');
  assert.ok(undo.script.includes("'sddl' = 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)'; 'directory' = $false"), 'and the container too');
  assert.not.ok(undo.script.includes(RESTART_PS.slice(0, 200)), 'the ACL undo carries only what it needs');

  const again = await clearMachineKeys({}, ctxFor(scripted(fx('repair-again-ok.json'))));
  assert.is(again.status, 'ok');
  assert.match(again.summary, /already match the build and the key is usable/);
  assert.is((await list(dir)).length, 1);
});

triple('ACL repair then regeneration: two entries, the certificate undone first (newest), its key file restored', async () => {
  const r = await clearMachineKeys({}, ctxFor(scripted(fx('repair-regenerated.json'))));
  assert.is(r.status, 'changed');
  assert.ok(r.regenerated);
  const entries = await list(dir);
  assert.equal(entries.map((e) => e.script), ['clear-machinekeys', 'clear-machinekeys']);
  assert.match(entries[0]!.summary, /^repaired the MachineKeys folder ACL, f686/);
  assert.match(entries[1]!.summary, /^removed RDP certificate\(s\) 3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41 so TermService creates a new one/);
  assert.match(r.undo!, /^npx tsx scripts\/undo\.ts --run /);
  const certUndo = entries[1]!.undo as { script: string };
  assert.match(certUndo.script, /'keyRemoved' = \$true/);
  assert.equal(await parseProblems(certUndo.script), []);
});

triple('--rename-folder is refused without --force before anything runs', async () => {
  const run = scripted();
  await clearMachineKeys({ renameFolder: true }, ctxFor(run)).then(
    () => assert.unreachable('should refuse'),
    (e: unknown) => assert.instance(e, UsageError),
  );
  assert.equal(run.scripts, []);
  const r = await clearMachineKeys({ renameFolder: true, force: true }, ctxFor(scripted(fx('rename-changed.json'))));
  assert.is(r.status, 'changed');
  const e = (await list(dir))[0]!;
  assert.match(e.summary, /renamed MachineKeys to .*_old_20250601-120000/);
  assert.match((e.undo as { script: string }).script, /Restore-RdpMachineKeysFolder -Path \$P\.Path -RenamedTo \$P\.RenamedTo/);
});

// ---

const script = suite('generated clear-machinekeys script');

script('the per-build ACE sets arrive as data, by SID; never a recursive grant or takeown', () => {
  const s = buildClearScript({}, false);
  assert.match(s, /'grant' = '\*S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833:\(F\)'/);
  assert.match(s, /DefaultFolderSddl = 'O:SYG:SYD:PAI\(A;;0x12019f;;;WD\)\(A;;FA;;;BA\)'/);
  assert.not.ok(/takeown/i.test(s));
  assert.not.ok(/NT AUTHORITY|NETWORK SERVICE:|BUILTIN\\/.test(s.replace(/#.*$/gm, '')), 'no account names outside comments');
  // The one recursive icacls in the script is the backup (/save … /t), which only reads.
  const recursive = s.split('\n').filter((l) => /'\/t'/.test(l));
  assert.equal(recursive.length, 1);
  assert.match(recursive[0]!, /'\/save'/);
});

script('the container prefix and the store are the lib/server-ps.ts constants, as literals; no function reads $P', () => {
  const ps = readFileSync(join(root, 'scripts/ps/clear-machinekeys.ps1'), 'utf8');
  assert.ok(ps.includes(`-Filter (${psQuote(RDP_CONTAINER_PREFIX)} + '*')`) && ps.includes(`.StartsWith(${psQuote(RDP_CONTAINER_PREFIX)})`), RDP_CONTAINER_PREFIX);
  assert.ok(RD_STORE.endsWith('\\Remote Desktop') && ps.includes(`-Store 'Remote Desktop'`), RD_STORE);
  assert.not.ok(/\$P\b/.test(ps), 'functions take parameters; only the generated call reads $P');
  assert.ok(buildClearScript({}, false).includes('\n$Result = Repair-RdpMachineKey '), 'the step is Repair-RdpMachineKey itself');
  const step = readPsFile('clear-machinekeys').functions.find((f) => f.name === 'Repair-RdpMachineKey')!.text;
  assert.equal([...new Set(step.match(/\breturn\b.*/g))], ['return (Compress-RdpResult -Result $result -Drop $Drop)'], 'every exit is trimmed to fit 4 KB');
});

// ---

const cli = suite('clear-machinekeys CLI');

const run = (args: string[], path?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/clear-machinekeys.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...(path ? { PATH: `${path}:${process.env.PATH}` } : {}) },
  });

cli('bad input and --rename-folder without --force: exit 2, nothing run, the warning shown', () => {
  const fb = fakeBin(['az']);
  try {
    for (const args of [['--rename-folder'], ['--backup-dir', 'C:\\x|y'], ['--event-hours', '0'], ['--timeout', '1e3'], ['--target', 'azure://sub/rg/../vm']]) {
      const r = run(['--target', 'azure://sub-1/rg-web/web-01', ...args], fb.dir);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      if (args[0] === '--rename-folder') assert.ok(r.stderr.includes(RENAME_WARNING.slice(0, 60)));
    }
    assert.not.ok(existsSync(join(fb.dir, 'az.argv')), 'az was never started');
  } finally {
    fb.remove();
  }
});

cli('--emit prints exactly the script that would run', () => {
  const r = run(['--emit', '--dry-run', '--no-regenerate']);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, buildClearScript({ regenerate: false, restart: true, renameFolder: false, force: false, eventHours: 72, timeoutSeconds: 60 }, true));
});

decide.run();
triple.run();
script.run();
cli.run();
