// The local channel for real: runScript({ kind: 'local' }) through node-powershell and the real
// pwsh, on Linux, by the channel's test seam (RDPFIX_TEST_LOCAL_PWSH, see lib/channels.ts): real
// generated scripts (lib/ps.ts buildScript) with hostile values, a 150 KB script through the
// base64 transport, a script that throws, stderr noise beside a result, a run past its timeout;
// and, without the seam, the refusal this channel gives off Windows today. The elevation check is
// Windows-only: with the seam's check-elevation mode it runs, and must end in a clear EnvError.
// Run: npx tsx test/lib/channels-local.test.ts  (needs pwsh; prints one skip line otherwise)
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LOCAL_PWSH_SEAM, runScript } from '../../scripts/lib/channels.ts';
import { EnvError, StepError } from '../../scripts/lib/errors.ts';
import { buildScript, RESULT_BEGIN } from '../../scripts/lib/ps.ts';
import { fuzzString, NASTY, rng } from '../helpers/fuzz.ts';
import { pwshGate, pwshPath } from '../helpers/pwsh.ts';

const local = { kind: 'local' } as const;

/** Run fn with the seam set to `mode` (undefined: unset), restoring the environment after. */
async function withSeam<T>(mode: string | undefined, fn: () => Promise<T>): Promise<T> {
  const old = process.env[LOCAL_PWSH_SEAM];
  if (mode === undefined) delete process.env[LOCAL_PWSH_SEAM];
  else process.env[LOCAL_PWSH_SEAM] = mode;
  try {
    return await fn();
  } finally {
    if (old === undefined) delete process.env[LOCAL_PWSH_SEAM];
    else process.env[LOCAL_PWSH_SEAM] = old;
  }
}

/** The error a promise rejects with (the test fails if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    (v) => assert.unreachable(`expected an error, got ${JSON.stringify(v).slice(0, 300)}`) as never,
    (e: Error) => e,
  );
}

// Every shell this file starts inherits this variable: /proc/PID/environ finds them wherever they
// are, orphans of a killed launcher included.
const MARK = `RDPFIX_LOCAL_TEST_${process.pid}_${randomBytes(4).toString('hex')}`;
process.env.RDPFIX_LOCAL_TEST_MARK = MARK;

/** Processes started by this test file that are still running (anywhere in the process tree). */
function ourShells(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(`RDPFIX_LOCAL_TEST_MARK=${MARK}`)) out.push(Number(name));
    } catch { /* gone meanwhile, or not ours to read */ }
  }
  return out;
}

/** The shells are gone shortly after a run (dispose is awaited, but the kernel reaps a moment later). */
async function assertNoShellLeft(): Promise<void> {
  for (let i = 0; i < 50 && ourShells().length; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(ourShells(), [], 'no PowerShell left running');
}

/**
 * A `pwsh` for PATH that is PowerShell's own process. The .NET global tool's `pwsh` is a launcher
 * that starts `dotnet pwsh.dll` as a child and does not pass signals on, so ending the launcher
 * (what node-powershell's dispose does) would leave the real shell running; powershell.exe on
 * Windows and a native pwsh are one process. Returns the directory to put first on PATH.
 */
function directPwshDir(dir: string): string {
  const r = spawnSync(pwshPath()!, ['-NoLogo', '-NoProfile', '-NonInteractive', '-Command', '[Environment]::ProcessPath; [Environment]::GetCommandLineArgs()[0]'], { encoding: 'utf8', timeout: 60_000 });
  const [host, first] = r.stdout.trim().split(/\r?\n/);
  if (r.status !== 0 || !host) throw new Error(`pwsh did not say where it runs: ${r.stderr}`);
  if (basename(host) !== 'dotnet' || !first?.endsWith('.dll')) return dirname(host);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(join(dir, 'pwsh'), `#!/bin/sh\nexec ${q(host)} ${q(first)} "$@"\n`, { mode: 0o755 });
  return dir;
}

const hostile = (): string[] => {
  const r = rng(23);
  return [
    ...NASTY,
    "it's", '\u2018q\u2019', '\u201alow\u201b', '"dq"', '\u201ccurly\u201d', '$(Remove-Item -Recurse C:\\)', '${env:PATH}', '`$x`', 'a\nb', 'c\r\nd',
    'Conexi\u00f3n', '\u65e5\u672c\u8a9e', 'e\u0301', '\u{1f600}',
    ...Array.from({ length: 60 }, (_, i) => fuzzString(r, i + 1)).filter((s) => s.length > 0),
  ];
};

const echo = (values: string[], body = '', extra = '') =>
  buildScript({
    name: 'local-echo',
    summary: 'echo values back through the local channel',
    params: { Hostile: values },
    body: `Write-Host 'noise: Write-Host'
Write-Warning 'noise: Write-Warning'
${body}
$Result = [ordered]@{ step = 'local-echo'; status = 'ok'; hostile = @($P.Hostile); count = @($P.Hostile).Count${extra} }`,
  });

const run = suite('local channel through node-powershell and the real pwsh');

run('without the seam, local off Windows refuses with the EnvError it has always had (also for an unknown seam value)', async () => {
  for (const mode of [undefined, '', 'yes', 'true']) {
    const e = await withSeam(mode, () => rejection(runScript(local, echo(['x']))));
    assert.instance(e, EnvError, String(mode));
    assert.is((e as EnvError).exitCode, 2);
    assert.match(e.message, new RegExp(`this Windows machine, but this is ${process.platform}`));
    assert.match((e as EnvError).hint ?? '', /--emit/);
  }
});

run('seam check-elevation: the Windows-only elevation check runs and ends in a clear EnvError, not a crash', async () => {
  const t0 = Date.now();
  const e = await withSeam('check-elevation', () => rejection(runScript(local, echo(['x']), { timeoutMs: 60_000 })));
  assert.instance(e, EnvError, `${e.constructor.name}: ${e.message}`);
  assert.is((e as EnvError).exitCode, 2);
  // pwsh's own words (its .NET says Windows principals are not supported here), without colour codes.
  assert.match(e.message, /^could not tell whether this PowerShell is elevated: .*Windows Principal functionality is not supported on this platform/);
  assert.not.match(e.message, /\x1b/);
  assert.match((e as EnvError).hint ?? '', /Administrator/);
  await assertNoShellLeft();
  console.log(`  elevation check: EnvError after ${Date.now() - t0} ms`);
});

run('seam 1: hostile values come back exactly (quotes of all five kinds, $(...), backticks, newlines, non-ASCII as base64)', async () => {
  const values = hostile();
  const t0 = Date.now();
  const out = await withSeam('1', () => runScript(local, echo(values), { timeoutMs: 60_000 }));
  assert.is(out.channel, 'local');
  assert.is(out.result.status, 'ok', JSON.stringify(out.result).slice(0, 400));
  assert.is(out.result.count, values.length);
  assert.equal(out.result.hostile, values);
  assert.match(out.output, /noise: Write-Host/, 'the noise was on the same stdout as the result');
  console.log(`  hostile: ${values.length} values, ${Date.now() - t0} ms`);
});

run('seam 1: a 150 KB script through the base64 transport arrives byte for byte (digest computed by PowerShell)', async () => {
  const big = fuzzString(rng(1), 7); // the fuzz's 64 KiB string
  const pad = Array.from({ length: 700 }, (_, i) => `pad ${String(i).padStart(4, '0')} ${'$(not-run) `tick` "dq" '.repeat(3)}`).join('\n');
  const body = `$pad = @'
${pad}
'@
$sha = [System.Security.Cryptography.SHA256]::Create()
$digest = -join ($sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($pad)) | ForEach-Object { $_.ToString('x2') })`;
  let script = echo([big], body, '; digest = $digest; padLength = $pad.Length');
  const comments = Array.from({ length: Math.ceil(Math.max(0, 150 * 1024 - script.length) / 80) }, (_, i) => `# padding comment ${String(i).padStart(5, '0')} ${'-'.repeat(55)}`);
  script = `${comments.join('\n')}\n${script}`;
  assert.ok(script.length >= 150 * 1024, `${script.length} B`);
  const t0 = Date.now();
  const out = await withSeam('1', () => runScript(local, script, { timeoutMs: 120_000 }));
  assert.is(out.result.status, 'ok', JSON.stringify(out.result).slice(0, 400));
  assert.is(out.result.padLength, pad.length);
  assert.is(out.result.digest, createHash('sha256').update(pad, 'utf8').digest('hex'));
  assert.equal(out.result.hostile, [big]);
  console.log(`  big: script ${script.length} B, ${Date.now() - t0} ms`);
});

run('seam 1: a long non-ASCII result (180 KB of 3- and 4-byte UTF-8) comes back whole, with no U+FFFD', async () => {
  // Made by PowerShell, so only the way back is under test: node-powershell reads it in many chunks.
  const script = buildScript({
    name: 'local-utf8',
    summary: 'a long non-ASCII result',
    params: {},
    body: `$cjk = ([string][char]0x65E5 + [char]0x672C + [char]0x8A9E) * 20000
$emoji = [char]::ConvertFromUtf32(0x1F600) * 5000
$Result = [ordered]@{ step = 'local-utf8'; status = 'ok'; cjk = $cjk; emoji = $emoji }`,
  });
  const out = await withSeam('1', () => runScript(local, script, { timeoutMs: 60_000 }));
  assert.not.ok(out.output.includes('\ufffd'), 'no replacement character in the output');
  assert.ok(out.result.cjk === '\u65e5\u672c\u8a9e'.repeat(20000), 'the CJK text is whole');
  assert.ok(out.result.emoji === '\u{1f600}'.repeat(5000), 'the emoji text is whole');
});

run('seam 1: a script that throws comes back as one failed JSON result with its message', async () => {
  const script = buildScript({ name: 'local-throw', summary: 'throws', params: { Why: "it's \u2019bad\u2019 $(x) `n" }, body: 'throw ("refused: " + $P.Why)' });
  const out = await withSeam('1', () => runScript(local, script, { timeoutMs: 60_000 }));
  assert.is(out.result.step, 'local-throw');
  assert.is(out.result.status, 'failed');
  assert.is(out.result.error, "refused: it's \u2019bad\u2019 $(x) `n");
  assert.is(out.output.split(RESULT_BEGIN).length - 1, 1, 'one result');
});

run('seam 1: a step that writes to stderr (as native commands do) still returns its result', async () => {
  // node-powershell calls any stderr output a failed invocation and, by default, throws its stdout away.
  const out = await withSeam('1', () => runScript(local, echo(['kept'], "[Console]::Error.WriteLine('noise: stderr from a native tool')"), { timeoutMs: 60_000 }));
  assert.is(out.result.status, 'ok');
  assert.equal(out.result.hostile, ['kept']);
});

run('seam 1: output without a result is a StepError naming what is missing', async () => {
  const e = await withSeam('1', () => rejection(runScript(local, "Write-Output 'no markers here'; [Console]::Error.WriteLine('why: nothing')", { timeoutMs: 60_000 })));
  assert.instance(e, StepError, `${e.constructor.name}: ${e.message}`);
  assert.match(e.message, /^local: no rdpfix result in the output/);
  assert.match((e as StepError).hint ?? '', /why: nothing/);
});

run('seam 1: a script that outlives the timeout is a StepError that says so, and the shell is ended', async () => {
  const timeoutMs = 4000;
  const script = buildScript({ name: 'local-sleep', summary: 'sleeps', params: {}, body: "Start-Sleep -Seconds 120\n$Result = [ordered]@{ step = 'local-sleep'; status = 'ok' }" });
  const t0 = Date.now();
  const e = await withSeam('1', () => rejection(runScript(local, script, { timeoutMs })));
  const ms = Date.now() - t0;
  assert.instance(e, StepError, `${e.constructor.name}: ${e.message}`);
  assert.match(e.message, /^local: the script timed out after 4 s without a result/);
  // The message proves the channel's timeout ended it; the time is printed, not asserted.
  await assertNoShellLeft();
  console.log(`  timeout: StepError after ${ms} ms (timeout ${timeoutMs} ms)`);
});

let binDir: string | undefined;
run.after(() => {
  // Cleanup even after a failure: what this file started, then the launcher directory.
  for (const pid of ourShells()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  if (binDir) rmSync(binDir, { recursive: true, force: true });
});

if (process.platform !== 'win32' && pwshGate('local channel with real pwsh')) {
  binDir = mkdtempSync(join(tmpdir(), 'rdpfix-local-pwsh-'));
  // The seam runs `pwsh` from PATH, as a user's shell would find it.
  process.env.PATH = `${directPwshDir(binDir)}:${process.env.PATH ?? ''}`;
  run.run();
}
