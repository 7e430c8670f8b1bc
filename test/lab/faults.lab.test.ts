// Proof under faults (issue 12 part 3), the CI-sized sample: the Windows twin behind a real sshd
// (test/lab/twin-ssh.ts, test/windows/TwinHost.ps1), rdpfix's real CLIs over ssh:// from the client
// namespace, and faults injected while a mutating step runs: the client SIGKILLed, the remote
// script's process SIGKILLed, the SSH session dropped, the backup disk full. After every fault
// (runCase): the target is unchanged, or changed with a backup and a target record; undo
// --reconcile (once it exists) then undo --run puts the twin back exactly (Get-TwinState from the
// state file); one record per run; a re-run after a completed change says ok.
// The full count (>= 200 kills) is test/soak/faults.ts, run by hand; its numbers are in
// docs/verification.md.
// Run: CI=true npx tsx test/lab/faults.lab.test.ts  (needs root, netns, sshd, pwsh; skips otherwise)
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pwshGate } from '../helpers/pwsh.ts';
import { cleanupStaleLab, createTopology } from './netns.ts';
import { labGate, labMissing } from './prereq.ts';
import { cleanupStaleSshConfig, sshMissing } from './sshd.ts';
import { closeLab, openLab, REPO, realPwsh, runCase, STEPS, type CaseResult, type Fault, type Lab, type StepCase } from './twin-ssh.ts';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

if (labMissing(['root', 'netns']).length === 0) {
  cleanupStaleLab();
  cleanupStaleSshConfig();
}

const gate = labGate('faults', ['root', 'netns']) && pwshGate('faults');
const missing = gate ? sshMissing() : [];
if (gate && missing.length) {
  if (process.env.CI === 'true') throw new Error(`lab test "faults" cannot run in CI: missing ${missing.join(', ')}`);
  console.log(`skip: faults: needs ${missing.join(', ')}`);
}

const step = (name: string): StepCase => STEPS.find((s) => s.name === name)!;
const results: CaseResult[] = [];
let lab: Lab | undefined;

/** One case; its result kept for the closing lines; its problems are the assertion. */
async function check(s: StepCase, fault: Fault): Promise<CaseResult> {
  const r = await runCase(lab!, s, fault);
  results.push(r);
  assert.equal(r.problems, [], `${s.name}, ${JSON.stringify(fault)}: ${r.problems.join('\n')}`);
  return r;
}

const t = suite('faults over ssh:// on the Windows twin');

t.before(async () => {
  lab = await openLab(createTopology);
});
t.after(async () => {
  await closeLab(lab);
  for (const r of results) {
    console.log(`  ${r.step} | ${r.fault.kind}${r.fault.delayMs !== undefined ? ` @${r.fault.delayMs} ms` : ''}${r.fault.roomPages !== undefined ? ` room ${r.fault.roomPages}` : ''} | hit ${r.hit} | left ${r.left} | first ${r.firstRun.status ?? `exit ${r.firstRun.code}${r.firstRun.signal ? ` ${r.firstRun.signal}` : ''}`} | records ${r.records} [${r.recordPhases.join(',')}] | reconcile ${r.reconciled} | re-run ${r.rerun ?? '-'} | exact ${r.restoredExact} | ${r.ms} ms`);
  }
});

t('the twin host: an alias beats the function the script defines, and the state survives the process', () => {
  // TwinHost.ps1 -SelfTest: a child scope defines Get-RdpRunAs and Start-Sleep, as a generated
  // script does; the twin's answers come back (the fixture's SYSTEM SID, a Start-Sleep that returns nothing).
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-twinhost-'));
  try {
    const [exe, ...lead] = realPwsh();
    const state = join(dir, 'twin.clixml');
    const setup = spawnSync(exe, [...lead, '-NoLogo', '-NoProfile', '-NonInteractive', '-Command',
      `Import-Module '${join(REPO, 'test/windows/WindowsTwin.psm1')}' -DisableNameChecking; Reset-WindowsTwin -Root '${dir}' -Fixture 'healthy-2019'; Set-TwinValue -Name runAs -Value 'S-1-5-21-1-2-3-500'; Export-TwinState -Path '${state}'`], { encoding: 'utf8', timeout: 120_000 });
    assert.is(setup.status, 0, setup.stderr);
    const r = spawnSync(exe, [...lead, '-NoLogo', '-NoProfile', '-NonInteractive', '-File', join(REPO, 'test/windows/TwinHost.ps1'), '-SelfTest'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, RDPFIX_TWIN_STATE: state } });
    assert.is(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { runAs: string; sleep: unknown; routed: number };
    assert.is(o.runAs, 'S-1-5-21-1-2-3-500', 'the twin answered from the saved state, not the script\'s own function');
    assert.is(o.sleep, null, 'Start-Sleep is the twin\'s (returns at once, nothing)');
    const boundary = (readFileSync(join(REPO, 'scripts/ps/windows.ps1'), 'utf8').match(/^function /gm) ?? []).length;
    assert.is(o.routed, boundary, 'every boundary function is routed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t('plain: toggle-nla disable over ssh:// changes the twin, writes the backup; undo --run puts it back exactly', async () => {
  const r = await check(step('toggle-nla disable'), { kind: 'none' });
  assert.is(r.firstRun.status, 'changed');
  assert.is(r.left, 'changed');
  assert.is(r.rerun, 'ok', 'a second run finds nothing to do');
  assert.is(r.restoredExact, true);
});

// The remote script's window, measured on the plain run: the kill delays fall inside it.
const remoteWindow = () => {
  const plain = results.find((r) => r.fault.kind === 'none' && r.firstRun.remoteFrom !== null);
  return { from: plain?.firstRun.remoteFrom ?? 3000, length: Math.max(200, (plain?.firstRun.remoteTo ?? 6000) - (plain?.firstRun.remoteFrom ?? 3000)) };
};

for (const s of STEPS) {
  t(`${s.name}: the remote script SIGKILLed half-way, the client SIGKILLed (process group) half-way`, async () => {
    const w = remoteWindow();
    await check(s, { kind: 'remote-kill', delayMs: Math.round(w.length / 2) });
    await check(s, { kind: 'client-kill', delayMs: w.from + Math.round(w.length / 2), group: true });
  });
}

t('toggle-nla disable: the SSH session dropped half-way (sshd\'s session process killed)', async () => {
  await check(step('toggle-nla disable'), { kind: 'drop', delayMs: Math.round(remoteWindow().length / 2) });
});

t('toggle-nla disable and clear-machinekeys repair: the backup disk full (no room; one page)', async () => {
  const nla = await check(step('toggle-nla disable'), { kind: 'full-disk', roomPages: 0 });
  assert.is(nla.left, 'unchanged', 'no backup, no change');
  await check(step('clear-machinekeys repair'), { kind: 'full-disk', roomPages: 1 });
});

if (gate && missing.length === 0) t.run();
