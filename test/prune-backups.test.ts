// prune-backups: the CLI refuses bad or missing values with exit 2 before anything runs, --emit runs
// nothing and prints exactly the script, and the report (sizes, dry run vs real) is interpreted from
// the result shape Remove-RdpOldBackup returns (test/windows/backup.Tests.ps1 runs that for real).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../scripts/lib/channels.ts';
import type { StepContext } from '../scripts/lib/server-step.ts';
import { buildPruneScript, interpretPrune, pruneBackups, sizeText, type PruneRaw } from '../scripts/prune-backups.ts';
import { fakeBin } from './helpers/fakebin.ts';
import { scripted } from './helpers/scripted-runner.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = (args: string[], path?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/prune-backups.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...(path ? { PATH: `${path}:${process.env.PATH}` } : {}) },
  });

const cli = suite('prune-backups CLI');

cli('usage errors are exit 2, name the bad value, and start no channel', () => {
  const fb = fakeBin(['ssh']);
  try {
    const cases: Array<[string[], RegExp]> = [
      [['--dry-run'], /--older-than DAYS is required/],
      [['--older-than', '0', '--dry-run'], /invalid --older-than "?0"?: out of range; expected a whole number from 1 to 3650/],
      [['--older-than', '3651', '--dry-run'], /invalid --older-than "?3651"?: out of range/],
      [['--older-than', '-5', '--dry-run'], /invalid --older-than "?-5"?/],
      [['--older-than', '7.5', '--dry-run'], /invalid --older-than "?7\.5"?: not a whole number/],
      [['--older-than', "30; Remove-Item C:\\ -Recurse", '--dry-run'], /invalid --older-than .*not a whole number/],
      [['--older-than', '', '--dry-run'], /invalid --older-than .*empty/],
      [['--older-than', '30'], /run it with --dry-run first.*--yes/],
      [['--older-than', '30', '--dry-run', '--backup-dir', 'relative'], /--backup-dir/],
      [['--older-than', '30', '--dry-run', '--backup-dir', 'C:\\x"; calc'], /--backup-dir/],
    ];
    for (const [args, message] of cases) {
      const r = run([...args, '--target', 'ssh://admin@vm1'], fb.dir);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.not.ok(existsSync(join(fb.dir, 'ssh.argv')), 'ssh was never started');
  } finally {
    fb.remove();
  }
});

cli('--emit prints exactly the script and runs nothing; a script that removes needs --yes like a run, one that lists does not', () => {
  const fb = fakeBin(['ssh', 'pwsh', 'powershell.exe', 'az']);
  try {
    let r = run(['--older-than', '90', '--emit', '--target', 'ssh://admin@vm1'], fb.dir);
    assert.is(r.status, 2);
    assert.is(r.stdout, '', 'no removing script without --yes');
    assert.match(r.stderr, /removes backups for good: .*--emit --dry-run prints the script that only lists/);
    r = run(['--older-than', '90', '--emit', '--yes', '--target', 'ssh://admin@vm1'], fb.dir);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, buildPruneScript({ olderThanDays: 90 }, false));
    r = run(['--older-than', '90', '--emit', '--dry-run', '--backup-dir', 'D:\\rdpfix-backups\\'], fb.dir);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, buildPruneScript({ olderThanDays: 90, backupRoot: 'D:\\rdpfix-backups' }, true));
    for (const n of ['ssh', 'pwsh', 'powershell.exe', 'az']) assert.not.ok(existsSync(join(fb.dir, `${n}.argv`)), `${n} was started`);
  } finally {
    fb.remove();
  }
});

const script = suite('prune-backups script');

script('the script calls Remove-RdpOldBackup with the days, the root and -WhatIf for a dry run, and needs Administrator rights', () => {
  const dry = buildPruneScript({ olderThanDays: 45 }, true);
  assert.match(dry, /Assert-RdpHost -Elevated\n\$Result = Remove-RdpOldBackup -Days \$P\.Days -Root \$P\.Root -WhatIf:\$P\.DryRun/);
  assert.match(dry, /Days = 45/);
  assert.match(dry, /DryRun = \$true/);
  assert.match(buildPruneScript({ olderThanDays: 45 }, false), /DryRun = \$false/);
  assert.match(buildPruneScript({ olderThanDays: 45, backupRoot: 'D:\\b' }, false), /Root = 'D:\\b'/);
});

const report = suite('prune-backups report');

const ctx = (dryRun: boolean, answer: unknown): StepContext => ({ target: parseTarget('winrm://vm1'), dryRun, run: scripted(answer) });
const folder = (name: string, bytes: number, files: number, record = false) => ({ name, path: `C:\\ProgramData\\rdpfix\\backup\\${name}`, created: '2025-01-01T12:00:00.0000000Z', bytes, files, record });

report('a dry run lists each folder it would remove with its size, removes nothing and gives the --yes command', async () => {
  const raw: PruneRaw = { step: 'prune-backups', status: 'would-change', root: 'C:\\ProgramData\\rdpfix\\backup', days: 30, wouldRemove: [folder('20250101-120000-000-toggle-nla-a1b2c3', 2048, 3)], removed: [], skipped: [], kept: 4 };
  const r = await pruneBackups({ olderThanDays: 30 }, ctx(true, raw));
  assert.is(r.status, 'would-change');
  assert.match(r.summary, /would remove 1 backup folder\(s\) older than 30 days \(2\.0 KB\) under C:\\ProgramData\\rdpfix\\backup; 4 newer kept/);
  assert.match(r.evidence[0]!, /^would remove C:\\ProgramData\\rdpfix\\backup\\20250101-120000-000-toggle-nla-a1b2c3 \(2\.0 KB, 3 files/);
  assert.equal(r.next, ['npx tsx scripts/prune-backups.ts --older-than 30 --yes --target winrm://vm1']);
  assert.is(r.bytes, 2048);
});

report('a real run reports what it removed with sizes, what it left and why', () => {
  const raw: PruneRaw = {
    step: 'prune-backups', status: 'changed', root: 'C:\\ProgramData\\rdpfix\\backup', days: 30,
    removed: [folder('a', 1000, 2, true), folder('b', 24, 1)], wouldRemove: [],
    skipped: [{ ...folder('c', 3, 1), reason: 'it is or holds a reparse point (junction or symbolic link): not followed, not removed' }], kept: 1,
  };
  const r = interpretPrune(raw, ctx(false, null), { olderThanDays: 30 });
  assert.is(r.status, 'changed');
  assert.match(r.summary, /removed 2 backup folder\(s\) older than 30 days \(1\.0 KB\)/);
  assert.is(r.removed.length, 2);
  assert.ok(r.warnings.some((w) => /left C:\\ProgramData\\rdpfix\\backup\\c: it is or holds a reparse point/.test(w)));
  assert.ok(r.notes.some((n) => /can no longer be undone/.test(n)));
});

report('a refusal from the target is failed with its message; nothing old is ok', () => {
  const failed = interpretPrune({ status: 'failed', error: 'refusing the backup folder C:\\ProgramData\\rdpfix\\backup: it is owned by S-1-5-21-1-2-3-1001' }, ctx(false, null), { olderThanDays: 30 });
  assert.is(failed.status, 'failed');
  assert.match(failed.summary, /owned by S-1-5-21-1-2-3-1001/);
  const ok = interpretPrune({ status: 'ok', root: 'C:\\b', removed: [], wouldRemove: [], kept: 3 }, ctx(false, null), { olderThanDays: 30 });
  assert.is(ok.status, 'ok');
  assert.match(ok.summary, /no backup folder older than 30 days under C:\\b \(3 newer kept\)/);
});

report('sizes read as people write them', () => {
  assert.is(sizeText(0), '0 B');
  assert.is(sizeText(1023), '1023 B');
  assert.is(sizeText(1536), '1.5 KB');
  assert.is(sizeText(5 * 1024 * 1024), '5.0 MB');
  assert.is(sizeText(null), 'size unknown');
});

cli.run();
script.run();
report.run();
