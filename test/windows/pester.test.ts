// The PowerShell unit tests: every test/windows/*.Tests.ps1, run by Pester 6.2.0 in ONE pwsh process
// (test/windows/run.ps1; pwsh and Pester start once, about 2 s), reported here as one uvu test per
// row run.ps1 writes: each Pester test, and each failure that is not a test (a file that did not
// parse or whose top-level BeforeAll threw, a block whose BeforeAll/AfterAll threw). A last test
// fails when the run itself went wrong: no rows, a timeout, or a non-zero exit with no failed row.
// RDPFIX_PESTER_ONLY=substr runs only the files whose name contains it (for development).
// Without pwsh or Pester it prints one `skip:` line; with CI=true that is a failure (pesterGate).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pesterGate, pesterPath } from '../helpers/pester.ts';
import { pwshPath } from '../helpers/pwsh.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const DIR = join(root, 'test', 'windows');
/** The whole run; each file takes seconds, so this only stops a hung pwsh. */
const TIMEOUT_MS = Number(process.env.RDPFIX_PESTER_TIMEOUT_MS) || 10 * 60_000;

interface Row {
  file: string;
  path: string;
  kind: 'test' | 'block' | 'container' | 'harness';
  result: string;
  ms: number;
  error: string | null;
}

interface PesterRun {
  files: string[];
  rows: Row[];
  code: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  readError: string | null;
  ms: number;
}

function runPester(files: string[]): Promise<PesterRun> {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-pester-'));
  const out = join(dir, 'rows.json');
  const t0 = Date.now();
  return new Promise<PesterRun>((resolve) => {
    // Its own process group: on a timeout the whole tree goes (pwsh, and any node it started).
    const p = spawn(pwshPath()!, ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', join(DIR, 'run.ps1'), '-Pester', pesterPath(), '-Out', out, ...files], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, TIMEOUT_MS);
    p.on('close', (code) => {
      clearTimeout(timer);
      let rows: Row[] = [];
      let readError: string | null = null;
      try {
        const doc: unknown = JSON.parse(readFileSync(out, 'utf8'));
        if (!Array.isArray(doc)) throw new Error('the rows file is not a JSON array');
        rows = doc as Row[];
      } catch (e) {
        readError = (e as Error).message;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      resolve({ files, rows, code, timedOut, stdout, stderr, readError, ms: Date.now() - t0 });
    });
  });
}

const tail = (s: string, n = 40) => s.trimEnd().split('\n').slice(-n).join('\n');

function rowName(r: Row): string {
  if (r.kind === 'block') return `${r.file} › ${r.path} (its BeforeAll/AfterAll)`;
  if (r.kind === 'container') return `${r.file} › (the whole file)`;
  if (r.kind === 'harness') return `${r.file} › (the harness)`;
  return `${r.file} › ${r.path}`;
}

let ready = false;
try {
  ready = pesterGate('Pester unit tests (test/windows/*.Tests.ps1)');
} catch (e) {
  test('pwsh and Pester 6.2.0 are installed', () => {
    throw e;
  });
}

if (ready) {
  const only = process.env.RDPFIX_PESTER_ONLY;
  const files = readdirSync(DIR).filter((n) => n.endsWith('.Tests.ps1')).sort().filter((n) => !only || n.includes(only)).map((n) => join('test', 'windows', n));
  const run = await runPester(files);
  const counts = run.rows.reduce<Record<string, number>>((a, r) => ({ ...a, [r.result]: (a[r.result] ?? 0) + 1 }), {});
  console.log(`  pester: ${files.length} file(s), ${run.rows.length} row(s) ${JSON.stringify(counts)} in ${(run.ms / 1000).toFixed(1)} s, exit ${run.code}${only ? ` (RDPFIX_PESTER_ONLY=${only})` : ''}`);

  for (const r of run.rows) {
    const name = rowName(r);
    test(name, () => {
      if (r.result === 'Passed') return;
      if (r.result === 'Skipped') {
        console.log(`skip: ${name}`);
        return;
      }
      assert.unreachable(`${r.result}${r.error ? `: ${r.error}` : ' (no error recorded)'}`);
    });
  }

  test(`the Pester run over ${files.length} file(s) ends, reports rows, and exits 0 only when every row passed`, () => {
    const output = `--- stderr (tail) ---\n${tail(run.stderr)}\n--- stdout (tail) ---\n${tail(run.stdout, 15)}`;
    if (run.timedOut) assert.unreachable(`pwsh was killed after ${TIMEOUT_MS} ms\n${output}`);
    assert.ok(files.length > 0, `no test/windows/*.Tests.ps1 file${only ? ` contains "${only}"` : ''}`);
    if (run.readError) assert.unreachable(`run.ps1 wrote no rows (${run.readError}); exit ${run.code}\n${output}`);
    if (!run.rows.length) assert.unreachable(`run.ps1 reported zero rows; exit ${run.code}\n${output}`);
    const failed = run.rows.filter((r) => r.result !== 'Passed' && r.result !== 'Skipped');
    if (run.code !== 0 && !failed.length) assert.unreachable(`run.ps1 exited ${run.code} although no row failed\n${output}`);
    if (run.code === 0 && failed.length) assert.unreachable(`run.ps1 exited 0 although ${failed.length} row(s) failed`);
    // Every file given ran: each has at least one row.
    for (const f of files) assert.ok(run.rows.some((r) => r.file === f), `${f}: no row (did Pester run it?)\n${output}`);
  });
}

test.run();
