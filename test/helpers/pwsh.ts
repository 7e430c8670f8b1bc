// Real PowerShell (pwsh 7.6 as a .NET global tool, see .ci/run) for tests that run generated
// scripts. Without pwsh a test prints one `skip:` line; with CI=true a missing pwsh fails the run,
// because a silently skipped PowerShell test would hide regressions.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findProgram } from '../../scripts/lib/which.ts';

export function pwshPath(): string | null {
  return findProgram('pwsh', [join(homedir(), '.dotnet', 'tools')]);
}

/** true: run the test. false: skipped (one line printed). Throws in CI. */
export function pwshGate(name: string): boolean {
  if (pwshPath()) return true;
  if (process.env.CI === 'true') throw new Error(`"${name}" cannot run in CI: pwsh is not installed (.ci/run installs it)`);
  console.log(`skip: ${name}: needs pwsh (dotnet tool install --global PowerShell --version 7.6.9)`);
  return false;
}

/** Run a script text as a .ps1 file with pwsh; returns its stdout, stderr and exit code. */
export function runPwsh(script: string, timeoutMs = 60_000): { stdout: string; stderr: string; code: number | null } {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-pwsh-'));
  try {
    const file = join(dir, 'script.ps1');
    writeFileSync(file, script);
    const r = spawnSync(pwshPath()!, ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', file], { encoding: 'utf8', timeout: timeoutMs });
    return { stdout: r.stdout, stderr: r.stderr, code: r.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
