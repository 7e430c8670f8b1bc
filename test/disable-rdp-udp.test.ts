// disable-rdp-udp: the generated PowerShell (the \Client subkey, backup before the change, check mode,
// PowerShell 5.1-safe), the clear refusal on a machine that is not a Windows client (or 'skipped' for
// the recipe runner), --emit, validation, and the idempotency triple (check / apply / again) through
// a fake WinRM channel with recorded results, journaled with an exact PowerShell undo.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { POLICY_KEY, setRdpUdp, udpPolicyScript, VALUE_NAME } from '../scripts/disable-rdp-udp.ts';
import { EnvError } from '../scripts/lib/errors.ts';
import type { JournalEntry } from '../scripts/lib/journal.ts';
import { fakeBin } from './helpers/fakebin.ts';
import { nodesOfType, parseProblems } from './helpers/powershell.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = join(root, 'scripts', 'disable-rdp-udp.ts');
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
const fixture = (n: string) => readFileSync(new URL(`./fixtures/disable-rdp-udp/${n}`, import.meta.url), 'utf8');

// ------------------------------------------------------------ the generated script

const gen = suite('udpPolicyScript');

gen('writes fClientDisableUDP under ...\\Terminal Services\\Client (the subkey others forget)', () => {
  const s = udpPolicyScript({ value: 1 });
  assert.is(POLICY_KEY, 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services\\Client');
  assert.ok(s.includes("Key = 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services\\Client'"), s);
  assert.ok(s.includes("RegKey = 'HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services\\Client'"));
  assert.match(s, /Value = 1\n/);
  assert.match(s, /Set-RdpRegistryValue -Path \$Key -Name 'fClientDisableUDP' -Type DWord -Value \$Value/);
});

gen('backs the key up with reg export before changing anything, behind a ShouldProcess gate', () => {
  const s = udpPolicyScript({ value: 1 });
  const gate = s.indexOf('$PSCmdlet.ShouldProcess(', s.indexOf('function Set-RdpUdpPolicy'));
  const backup = s.indexOf("Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', $RegKey, $backupFile, '/y')");
  const fn = s.indexOf('function Set-RdpUdpPolicy');
  const change = s.indexOf('Set-RdpRegistryValue -Path $Key', fn);
  const remove = s.indexOf('Remove-RdpRegistryValue -Path $Key', fn);
  assert.ok(gate > 0 && backup > gate && change > backup && remove > backup, `gate ${gate} backup ${backup} change ${change}`);
  // A failing reg export stops the step (Invoke-RdpNative throws on a non-zero exit code).
  assert.match(s, /if \(\$LASTEXITCODE -gt \$MaxExitCode -or \$LASTEXITCODE -lt 0\) \{\n\s+throw \(/);
  assert.match(s, /-WhatIf:\$P\.DryRun/);
  assert.match(udpPolicyScript({ value: 1, dryRun: true }), /DryRun = \$true/);
  // Read back after the change.
  assert.match(s, /\$after = Get-RdpUdpPolicy -Key \$Key/);
});

gen('--enable removes the value; undo restores an exact earlier value', () => {
  assert.match(udpPolicyScript({ value: null }), /Value = \$null\n/);
  assert.match(udpPolicyScript({ value: 0 }), /Value = 0\n/);
});

// What the target record (scripts/ps/record.ps1) and its protected backup folder (backup.ps1) bring in.
const RECORD_AND_BACKUP_COMMANDS = ['Write-Verbose', 'ConvertFrom-RdpSddl', 'Get-RdpPathSddl', 'Get-RdpRunAs', 'Split-Path', 'Assert-RdpBackupFolderSafe', 'Get-RdpBackupAclProblem', 'Set-RdpPathSddl',
  'New-RdpProtectedDirectory', 'Initialize-RdpBackupRoot', 'Get-RdpHeldRecord', 'New-RdpBackupFolder', 'Save-RdpTargetRecord', 'Get-Process', 'Get-Variable', 'Write-RdpRecordFile', 'Set-Content',
  'Move-Item', 'New-RdpTargetRecord', 'Complete-RdpTargetRecord', 'Get-Content', 'Remove-Item'];

gen('parses with the real grammar; approved verbs, full cmdlet names, nothing PowerShell 5.1 lacks', async () => {
  for (const value of [1, null, 0]) {
    const s = udpPolicyScript({ value, backupDir: "D:\\Backups\\O'Brien ‘x’" });
    assert.equal(await parseProblems(s), []);
    const commands = new Set(await nodesOfType(s, 'command_name'));
    const allowed = new Set(['Set-StrictMode', 'Test-Path', 'Get-ItemProperty', 'Get-RdpUdpPolicy', 'Set-RdpUdpPolicy', 'Join-Path', 'Get-Date',
      'Remove-ItemProperty', 'New-Item', 'New-ItemProperty', 'Out-String', 'ConvertTo-Json', 'Write-Output', 'reg.exe',
      // the shared functions it includes (windows.ps1's boundary, literal.ps1) and what they call
      'Get-RdpRegistryValue', 'Get-Item', 'Invoke-RdpNative', 'ForEach-Object', 'Select-Object', 'ConvertTo-RdpLiteral',
      'Assert-RdpHost', 'New-Object', 'Test-RdpRegistryKey', 'New-RdpRegistryKey', 'Set-RdpRegistryValue', 'Remove-RdpRegistryValue',
      // the target record (record.ps1) and the protected backup folder it lives in (backup.ps1, sddl.ps1)
      ...RECORD_AND_BACKUP_COMMANDS]);
    assert.equal([...commands].filter((c) => !allowed.has(c)), []);
    assert.not.match(s, /Invoke-Expression|Write-Host|\?\?|catch \{\s*\}/);
  }
  // The backup folder is user input: quoted with every quote doubled; a non-ASCII one travels as
  // base64 of its UTF-8 (Windows PowerShell 5.1 reads a saved script as ANSI).
  assert.ok(udpPolicyScript({ value: 1, backupDir: "D:\\Backups\\O'Brien" }).includes("BackupDir = 'D:\\Backups\\O''Brien'"));
  const b64 = Buffer.from("D:\\Backups\\O'Brien ‘x’", 'utf8').toString('base64');
  assert.ok(udpPolicyScript({ value: 1, backupDir: "D:\\Backups\\O'Brien ‘x’" }).includes(`BackupDir = ([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('${b64}')))`));
});

gen('the value name and key the .ps1 writes as literals are the TypeScript constants', () => {
  const ps1 = readFileSync(join(root, 'scripts', 'ps', 'disable-rdp-udp.ps1'), 'utf8');
  const names = new Set([...ps1.matchAll(/-Name '([^']+)'/g)].map((m) => m[1]));
  assert.equal([...names], [VALUE_NAME]);
  assert.ok(ps1.includes(POLICY_KEY), 'the header names the key');
  assert.not.match(ps1, /\$\{|\$P\./, 'no TypeScript splice, and no $P read inside a function');
});

gen.run();

// ------------------------------------------------------------ not a Windows client

const local = suite('disable-rdp-udp on Linux/macOS');

local('--target local on Linux says it is a Windows-client setting and exits 2, running nothing', () => {
  const r = cli([]);
  assert.is(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /fClientDisableUDP is a setting of the Windows Remote Desktop client \(mstsc\); this machine runs linux/);
  assert.match(r.stderr, /--emit/);
});

local('--skip-if-not-windows reports status skipped with the reason (exit 0) for the recipe runner', () => {
  const r = cli(['--skip-if-not-windows', '--json']);
  assert.is(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.is(doc.status, 'skipped');
  assert.match(doc.reason, /Windows Remote Desktop client/);
});

local('the exported function: EnvError, or skipped', async () => {
  try {
    await setRdpUdp({ platform: 'darwin' });
    assert.unreachable('should refuse');
  } catch (e) {
    assert.ok(e instanceof EnvError && e.exitCode === 2, String(e));
  }
  assert.is((await setRdpUdp({ platform: 'darwin', skipIfNotWindows: true })).status, 'skipped');
});

local('--emit prints exactly the script that would run; bad input is exit 2', () => {
  assert.is(cli(['--emit']).stdout, udpPolicyScript({ value: 1 }));
  assert.is(cli(['--emit', '--enable', '--dry-run']).stdout, udpPolicyScript({ value: null, dryRun: true }));
  const bad = cli(['--emit', '--backup-dir', 'C:\\x"; calc; "']);
  assert.is(bad.status, 2);
  assert.is(bad.stdout, '');
  assert.is(cli(['--target', 'winrm://vm1;calc']).status, 2);
});

local.run();

// ------------------------------------------------------------ through a channel

const chan = suite('disable-rdp-udp through WinRM (fake pwsh, recorded results)');

function withFake<T>(fn: (fb: ReturnType<typeof fakeBin>, jdir: string) => Promise<T>): Promise<T> {
  const fb = fakeBin(['pwsh']);
  const restore = fb.install();
  const jdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
  return fn(fb, jdir).finally(() => {
    restore();
    fb.remove();
    rmSync(jdir, { recursive: true, force: true });
  });
}
// The change entries (the intent entry each run writes first is not a change).
const entries = (d: string) => readdirSync(d).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(d, f), 'utf8')) as JournalEntry).filter((e) => !e.intent);

chan('check, apply, again: would-change (nothing journaled), changed (journaled with undo), ok', () =>
  withFake(async (fb, jdir) => {
    const target = 'winrm://client01.contoso.com';
    fb.answer('pwsh', fixture('check.txt'));
    const check = await setRdpUdp({ target, dryRun: true, journalDir: jdir });
    assert.is(check.status, 'would-change');
    assert.is(fb.stdin('pwsh'), udpPolicyScript({ value: 1, dryRun: true }), 'the exact script went over the channel');
    assert.equal(entries(jdir), []);

    fb.answer('pwsh', fixture('apply.txt'));
    const apply = await setRdpUdp({ target, journalDir: jdir });
    assert.equal([apply.status, apply.before, apply.after], ['changed', null, 1]);
    assert.is(apply.backup, 'C:\\ProgramData\\rdpfix\\backup\\disable-rdp-udp-20250301-101502.reg');
    const [e] = entries(jdir);
    assert.ok(e && e.id === apply.journal);
    assert.is(e!.script, 'disable-rdp-udp');
    assert.is(e!.target, target);
    assert.is(e!.backup, apply.backup);
    // Undo: the same script for the same target, restoring the previous state (absent -> remove).
    assert.equal(e!.undo, { kind: 'powershell', target, script: udpPolicyScript({ value: null }) });

    fb.answer('pwsh', fixture('again.txt'));
    const again = await setRdpUdp({ target, journalDir: jdir });
    assert.is(again.status, 'ok');
    assert.is(entries(jdir).length, 1, 'nothing new journaled');
  }));

chan('the CLI: --json is one object with status; a failed run is exit 1', () =>
  withFake(async (fb, jdir) => {
    fb.answer('pwsh', fixture('apply.txt'));
    const env = { PATH: `${fb.dir}:${process.env.PATH}` };
    const ok = cli(['--target', 'winrm://client01', '--json', '--journal', jdir], env);
    assert.is(ok.status, 0, ok.stderr);
    const doc = JSON.parse(ok.stdout);
    assert.equal([doc.status, doc.target, doc.after], ['changed', 'winrm://client01', 1]);
    assert.is(ok.stdout.trim().split('\n').length, 1);

    fb.answer('pwsh', fixture('failed.txt'));
    const bad = cli(['--target', 'winrm://client01', '--json', '--journal', jdir], env);
    assert.is(bad.status, 1, bad.stderr);
    assert.equal([JSON.parse(bad.stdout).status, JSON.parse(bad.stdout).error], ['failed', 'Requested registry access is not allowed.']);
  }));

chan.run();
