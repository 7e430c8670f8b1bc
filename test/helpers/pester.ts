// Pester 6.2.0 for the PowerShell unit tests (test/windows/*.Tests.ps1, run by
// test/windows/pester.test.ts). .ci/run restores it from NuGet into the global packages folder;
// RDPFIX_PESTER points at another Pester.psd1. The gate works like pwshGate: without pwsh or Pester
// a test prints one `skip:` line saying what is missing and how to get it; with CI=true a missing
// one fails, because a silently skipped PowerShell suite would hide regressions.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pwshPath } from './pwsh.ts';

export const PESTER_VERSION = '6.2.0';

/** The Pester.psd1 to import: RDPFIX_PESTER, else the NuGet global packages folder. */
export function pesterPath(): string {
  return process.env.RDPFIX_PESTER || join(homedir(), '.nuget', 'packages', 'pester', PESTER_VERSION, 'tools', 'Pester.psd1');
}

/** How to get what is missing: the lines .ci/run runs. */
const HOW = {
  pwsh: 'dotnet tool install --global PowerShell --version 7.6.9 (as .ci/run does)',
  pester: `dotnet restore of a throwaway SDK project with <PackageDownload Include="Pester" Version="[${PESTER_VERSION}]" /> (as .ci/run does), or set RDPFIX_PESTER to a Pester ${PESTER_VERSION} Pester.psd1`,
};

/** What is missing to run Pester here, or null when pwsh and Pester are both present. */
export function pesterMissing(): string | null {
  const missing: string[] = [];
  if (!pwshPath()) missing.push(`pwsh (${HOW.pwsh})`);
  const psd1 = pesterPath();
  if (!existsSync(psd1)) missing.push(`Pester ${PESTER_VERSION} at ${psd1} (${HOW.pester})`);
  return missing.length ? missing.join(' and ') : null;
}

/** true: run the test. false: skipped (one line printed). Throws in CI. */
export function pesterGate(name: string): boolean {
  const missing = pesterMissing();
  if (!missing) return true;
  if (process.env.CI === 'true') throw new Error(`"${name}" cannot run in CI: it needs ${missing}`);
  console.log(`skip: ${name}: needs ${missing}`);
  return false;
}
