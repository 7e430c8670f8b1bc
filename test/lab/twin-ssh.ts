// An ssh lab host whose `powershell` is the Windows twin (test/windows/TwinHost.ps1), the
// pieces a fault test needs around it, and the client side that runs rdpfix's real CLIs against it.
//
// THE HOST: test/lab/sshd.ts's Debian sshd in the server namespace; its `powershell` wrapper ends
// in `exec DOTNET PWSH.DLL -File TwinHost.ps1 "$@"` with RDPFIX_TWIN_STATE naming the twin's state
// file. The .NET global tool `pwsh` is a launcher that starts `dotnet pwsh.dll` as a CHILD and does
// not forward signals, so a SIGKILL to it would leave the script running: the wrapper execs the
// runtime itself, and the process below the session's shell that runs the script is that one
// (comm "dotnet"; remotePwshPids() finds it). Killing it is a server-side process dying mid-step.
//
// THE TWIN'S STATE: a file (WindowsTwin.psm1 Export-TwinState), written after every boundary call
// that changed it; its files (MachineKeys, backups, the target's records) are real files under
// <root>/ProgramData. A TwinControl (one long-lived pwsh in the test's own namespace) resets the
// twin from a fixture and reads Get-TwinState from the file, so a state check costs milliseconds,
// not a pwsh start.
//
// A FULL DISK: a tmpfs of a few pages mounted over <root>/ProgramData/rdpfix inside sshd's mount
// namespace (`ip netns exec` gave sshd a private one; the session processes inherit it), with a
// filler file taking all but `roomPages` pages, so the step's backup or record write fails with
// ENOSPC for real. The files written there are read back through /proc/<sshd pid>/root. freeDisk()
// remounts it larger (an admin freeing space) so reconcile and undo can read and write; the mount
// is gone with sshd's namespace at the latest.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pwshPath } from '../helpers/pwsh.ts';
import { run, type Spawned, type Topology } from './netns.ts';
import { which } from './prereq.ts';
import { comm, descendants, startSshd, type SshHost } from './sshd.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TWIN_HOST = join(REPO, 'test/windows/TwinHost.ps1');
const TWIN_MODULE = join(REPO, 'test/windows/WindowsTwin.psm1');

/** The program that really runs a PowerShell script: [exe, ...leading args]. */
export function realPwsh(): string[] {
  const shim = pwshPath();
  if (!shim) throw new Error('pwsh not found');
  const real = realpathSync(shim);
  // A .NET global tool: ~/.dotnet/tools/pwsh plus .store/powershell/<v>/powershell/<v>/tools/<tfm>/any/unix/pwsh.dll
  const store = join(dirname(real), '.store', 'powershell');
  const dotnet = which('dotnet');
  if (existsSync(store) && dotnet) {
    const found: string[] = [];
    const walk = (d: string, depth: number) => {
      if (depth > 8) return;
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (n === 'pwsh.dll' && d.endsWith(join('any', 'unix'))) found.push(p);
        else if (statSync(p).isDirectory()) walk(p, depth + 1);
      }
    };
    walk(store, 0);
    if (found.length) return [realpathSync(dotnet), found.sort().at(-1)!];
  }
  return [real]; // a real pwsh binary runs the script itself
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export interface TwinHost {
  ssh: SshHost;
  topo: Topology;
  /** The twin's folder (its ProgramData is below it) and its state file. */
  root: string;
  statePath: string;
  /** The pids below sshd that run a script (the runtime TwinHost.ps1 runs in). */
  remotePwshPids(): number[];
  /** A path of the twin as the lab host sees it (through a full-disk mount, if one is there). */
  hostView(path: string): string;
}

/** sshd on the topology's server whose `powershell` is the twin host on `root`'s state file. */
export async function startTwinSsh(topo: Topology, root: string, env: Record<string, string> = {}): Promise<TwinHost> {
  mkdirSync(root, { recursive: true });
  const statePath = join(root, 'twin.clixml');
  const [exe, ...lead] = realPwsh();
  // env: more for the twin host, e.g. RDPFIX_TWIN_TERMSERVICE (a real listener its TermService drives).
  const more = Object.entries(env).map(([k, v]) => `export ${k}=${q(v)}\n`).join('');
  const command = `${more}export RDPFIX_TWIN_STATE=${q(statePath)}\nexec ${[exe, ...lead].map(q).join(' ')} -NoLogo -NoProfile -NonInteractive -File ${q(TWIN_HOST)} "$@"`;
  const ssh = await startSshd(topo, { pwsh: exe, command });
  return {
    ssh,
    topo,
    root,
    statePath,
    remotePwshPids: () => ssh.sessionPids().filter((p) => /^(dotnet|pwsh)$/.test(comm(p))),
    hostView: (p: string) => `/proc/${ssh.sshd.pid}/root${resolve(p)}`,
  };
}

// ---------------------------------------------------------------- the twin from the test's side

/** One long-lived pwsh that resets the twin and reads its state file (JSON lines in and out). */
export class TwinControl {
  private child: ChildProcess;
  private buf = '';
  private waiting: ((line: string) => void)[] = [];
  private err = '';

  constructor() {
    const [exe, ...lead] = realPwsh();
    const loop = `
$ErrorActionPreference = 'Stop'
Import-Module ${psq(TWIN_MODULE)} -Force -DisableNameChecking
while ($null -ne ($line = [Console]::In.ReadLine())) {
    try {
        $r = $line | ConvertFrom-Json
        if ($r.op -eq 'reset') {
            Reset-WindowsTwin -Root $r.root -Fixture $r.fixture
            Export-TwinState -Path $r.state
        } else { Import-TwinState -Path $r.state }
        $out = [ordered]@{ ok = $true; state = (Get-TwinState) }
    } catch { $out = [ordered]@{ ok = $false; error = [string]$_ } }
    [Console]::Out.WriteLine('#twin# ' + ($out | ConvertTo-Json -Depth 10 -Compress))
}`;
    // A script file, so stdin carries only the requests.
    const file = join(mkdtempSync(join(tmpdir(), 'rdpfix-twin-control-')), 'control.ps1');
    writeFileSync(file, loop);
    this.child = spawn(exe, [...lead, '-NoLogo', '-NoProfile', '-NonInteractive', '-File', file], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.on('exit', () => rmSync(dirname(file), { recursive: true, force: true }));
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trimEnd();
        this.buf = this.buf.slice(i + 1);
        if (line.startsWith('#twin# ')) this.waiting.shift()?.(line.slice(7));
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.err = (this.err + d).slice(-4000)));
  }

  private ask(req: Record<string, string>): Promise<TwinState> {
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`twin control: no answer in 60 s to ${JSON.stringify(req)}\n${this.err}`)), 60_000);
      this.waiting.push((line) => {
        clearTimeout(timer);
        const o = JSON.parse(line) as { ok: boolean; state?: TwinState; error?: string };
        if (o.ok) res(o.state!);
        else rej(new Error(`twin control: ${o.error}`));
      });
      this.child.stdin!.write(`${JSON.stringify(req)}\n`);
    });
  }

  /** A fresh twin from a fixture (its ProgramData emptied), saved to the state file; its state. */
  reset(root: string, state: string, fixture: string): Promise<TwinState> {
    return this.ask({ op: 'reset', root, state, fixture });
  }

  /** Get-TwinState of the twin in the state file (as the next session would load it). */
  state(state: string): Promise<TwinState> {
    return this.ask({ op: 'state', state });
  }

  close(): void {
    this.child.stdin!.end();
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }
}

const psq = (s: string) => `'${s.replace(/'/g, "''")}'`;

export interface TwinState {
  services: Record<string, string>;
  registry: Record<string, Record<string, string>>;
  certificates: Record<string, string[]>;
  acl: Record<string, string>;
  files: string[];
  tasks: string[];
  mtu: string[];
}

/** The first place two states differ, readable ('' when equal). */
export function stateDiff(a: TwinState, b: TwinState): string {
  const fa = flatten(a), fb = flatten(b);
  const out: string[] = [];
  for (const k of new Set([...Object.keys(fa), ...Object.keys(fb)])) {
    if (fa[k] !== fb[k]) out.push(`${k}: ${fa[k] ?? '(none)'} -> ${fb[k] ?? '(none)'}`);
  }
  return out.sort().join('\n');
}

function flatten(o: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (Array.isArray(o)) {
    out[prefix] = JSON.stringify(o);
  } else if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = JSON.stringify(o);
  return out;
}

// ---------------------------------------------------------------- a full disk on the lab host

/** nsenter into sshd's mount namespace. */
function inHostMounts(host: TwinHost, argv: string[]) {
  return run([which('nsenter') ?? 'nsenter', '-t', String(host.ssh.sshd.pid), '-m', '--', ...argv], { check: true, timeoutMs: 15_000 });
}

/** Mount a full tmpfs over <root>/ProgramData/rdpfix, leaving `roomPages` 4 KiB pages free. */
export async function fillDisk(host: TwinHost, roomPages: number): Promise<string> {
  const dir = join(host.root, 'ProgramData', 'rdpfix');
  mkdirSync(dir, { recursive: true });
  const pages = roomPages + 2;
  await inHostMounts(host, ['mount', '-t', 'tmpfs', '-o', `size=${pages * 4096},mode=0755`, 'rdpfix-full', dir]);
  // The filler takes two pages: what is left is exactly roomPages.
  await inHostMounts(host, ['dd', 'if=/dev/zero', `of=${join(dir, '.disk-filler')}`, 'bs=4096', 'count=2', 'status=none']);
  return dir;
}

/** Give the full disk room again (an admin freeing space): 64 MiB. */
export async function freeDisk(host: TwinHost): Promise<void> {
  await inHostMounts(host, ['mount', '-o', 'remount,size=64m', join(host.root, 'ProgramData', 'rdpfix')]);
}

/** Unmount it (idempotent: a missing mount is fine). */
export async function unmountDisk(host: TwinHost): Promise<void> {
  const dir = join(host.root, 'ProgramData', 'rdpfix');
  await run([which('nsenter') ?? 'nsenter', '-t', String(host.ssh.sshd.pid), '-m', '--', 'umount', '-l', dir], { timeoutMs: 15_000 }).catch(() => undefined);
}

// ---------------------------------------------------------------- the client side

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  ms: number;
  /** The parsed --json output, when there was one. */
  json: Record<string, unknown> | null;
}

/** Start one of rdpfix's CLIs in the client namespace (its own process group; pid = node's). */
export function startCli(topo: Topology, script: string, args: string[], env: Record<string, string>): Spawned {
  return topo.spawnNode('client', [join(REPO, 'scripts', script), ...args], { env: { ...process.env, ...env }, cwd: REPO });
}

/** Wait for a started CLI and parse its JSON (the last line that is a JSON object). */
export async function finishCli(p: Spawned, t0: number, timeoutMs = 180_000): Promise<CliRun> {
  const timer = setTimeout(() => p.killSync(), timeoutMs);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  const stdout = p.output();
  let json: Record<string, unknown> | null = null;
  const start = stdout.indexOf('{');
  if (start >= 0) {
    try {
      json = JSON.parse(stdout.slice(start, stdout.lastIndexOf('}') + 1)) as Record<string, unknown>;
    } catch { /* not one JSON object: the caller reports stdout */ }
  }
  return { code, signal, stdout, ms: Date.now() - t0, json };
}

export async function runCli(topo: Topology, script: string, args: string[], env: Record<string, string>, timeoutMs = 180_000): Promise<CliRun> {
  const t0 = Date.now();
  return finishCli(startCli(topo, script, args, env), t0, timeoutMs);
}

/** Wait until no session process of the host is left (a killed client's ssh or a dropped session's pwsh may finish the step first). */
export async function waitSessionsGone(host: TwinHost, orphans: number[] = [], timeoutMs = 90_000): Promise<number> {
  const t0 = Date.now();
  const alive = (p: number) => /^(dotnet|pwsh|ssh|node)$/.test(comm(p));
  while (host.ssh.sessionPids().length || orphans.some(alive)) {
    if (Date.now() - t0 > timeoutMs) {
      for (const p of [...host.ssh.sessionPids(), ...orphans.filter(alive)]) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
      throw new Error(`session processes still there after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

/** Every record.json under the twin's backup root, as the host sees it: [folder name, parsed or the error]. */
export function targetRecords(host: TwinHost): { folder: string; record: Record<string, unknown> | null; error?: string; files: string[] }[] {
  const rootDir = host.hostView(join(host.root, 'ProgramData', 'rdpfix', 'backup'));
  if (!existsSync(rootDir)) return [];
  return readdirSync(rootDir).filter((n) => statSync(join(rootDir, n)).isDirectory()).sort().map((folder) => {
    const dir = join(rootDir, folder);
    const files = readdirSync(dir).sort();
    const file = join(dir, 'record.json');
    if (!existsSync(file)) return { folder, record: null, files };
    try {
      return { folder, record: JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, '')) as Record<string, unknown>, files };
    } catch (e) {
      return { folder, record: null, error: (e as Error).message, files };
    }
  });
}

/** The backup folders' files with their sizes (as the host sees them), for the report. */
export function backupFiles(host: TwinHost): { path: string; size: number }[] {
  const rootDir = host.hostView(join(host.root, 'ProgramData', 'rdpfix', 'backup'));
  const out: { path: string; size: number }[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else out.push({ path: p.slice(rootDir.length + 1), size: s.size });
    }
  };
  walk(rootDir);
  return out;
}

/** The kill helpers: SIGKILL a pid (or a group with a negative pid), ignoring one already gone. */
export function kill(pid: number | undefined, group = false): boolean {
  if (!pid) return false;
  try {
    process.kill(group ? -pid : pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

export { descendants };

// ---------------------------------------------------------------- faults: one case, end to end
//
// One case: a fresh twin from the step's fixture; the step started over ssh:// with its own
// journal, key and run id; one fault injected; then every check of issue 12 part 3 that the
// product supports (reconcile is used only when `undo --reconcile` exists: hasReconcile()).

/** A mutating step that can run against an ssh:// target. */
export interface StepCase {
  name: string;
  script: string;
  fixture: string;
  /** Arguments besides --target/--json/--journal; given the state before (a thumbprint, say). */
  args(before: TwinState): string[];
}

export const STEPS: StepCase[] = [
  { name: 'toggle-nla disable', script: 'toggle-nla.ts', fixture: 'healthy-2019', args: () => ['disable'] },
  {
    name: 'restart-termserv --regenerate-cert',
    script: 'restart-termserv.ts',
    fixture: 'healthy-2019',
    // --thumbprint: regenerate only while this certificate is in use, so a second run is ok (the
    // documented way to make the regeneration idempotent).
    args: (b) => ['--regenerate-cert', '--thumbprint', b.certificates['Remote Desktop']![0]!, '--force'],
  },
  { name: 'clear-machinekeys repair', script: 'clear-machinekeys.ts', fixture: 'key-unreadable-2019', args: () => ['--force'] },
  { name: 'clear-machinekeys --rename-folder', script: 'clear-machinekeys.ts', fixture: 'key-unreadable-2019', args: () => ['--rename-folder', '--force'] },
  // A client step, run on a Windows client reached over ssh:// (a jump box).
  { name: 'disable-rdp-udp', script: 'disable-rdp-udp.ts', fixture: 'healthy-2019', args: () => [] },
];
// Not here: lower-mtu. Its --interface/--mtu change runs on this machine only (no --target), so
// no ssh:// channel carries it.

/**
 * The backup root as the step is told it: a Windows path, which TwinHost's C: drive (rooted at the
 * twin's folder) maps to <root>/ProgramData/rdpfix/backup. The journal embeds a backup path in an
 * undo only when it is a valid Windows path (validateWindowsPath), so the twin's own Linux path
 * ($env:ProgramData) would journal "restore by hand" instead of an undo (seen: every server step).
 */
export const WIN_BACKUP = 'C:\\ProgramData\\rdpfix\\backup';

export type FaultKind = 'none' | 'client-kill' | 'drop' | 'remote-kill' | 'full-disk';

export interface Fault {
  kind: FaultKind;
  /** client-kill: ms after the client started; drop/remote-kill: ms after the remote script started. */
  delayMs?: number;
  /** client-kill: the whole process group (ssh too, as Ctrl-C or a closed terminal) or node alone. */
  group?: boolean;
  /** full-disk: 4 KiB pages left free on the backup disk. */
  roomPages?: number;
}

export interface CaseResult {
  step: string;
  fault: Fault;
  /** What the fault left: the target unchanged, or changed. */
  left: 'unchanged' | 'changed';
  /** Whether the fault really hit (the client/session was still running when it came). */
  hit: boolean;
  /** The step's own run; remoteFrom/To: when a remote script process was seen (ms after the client started). */
  firstRun: { code: number | null; signal: string | null; status: string | null; ms: number; remoteFrom: number | null; remoteTo: number | null };
  records: number;
  recordPhases: string[];
  reconciled: 'not-available' | 'ok' | 'failed';
  rerun: string | null;
  restoredExact: boolean | null;
  /** Each check that failed, with what was found: empty = the case passed. */
  problems: string[];
  notes: string[];
  ms: number;
}

const RECONCILE_PROBE = join(REPO, 'scripts', 'undo.ts');
/** Whether `undo --reconcile` exists yet (the lead's commit): its --help names the option. */
export function hasReconcile(): boolean {
  try {
    return readFileSync(RECONCILE_PROBE, 'utf8').includes("'reconcile'");
  } catch {
    return false;
  }
}

export interface Lab {
  topo: Topology;
  host: TwinHost;
  control: TwinControl;
  /** A scratch folder for journals and keys. */
  dir: string;
  seq: number;
}

/** The journal's entry files (parsed; a damaged one as its error) of a journal folder. */
export function journalEntries(dir: string): Record<string, unknown>[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.json')).sort().map((n) => {
    try {
      return JSON.parse(readFileSync(join(dir, n), 'utf8')) as Record<string, unknown>;
    } catch (e) {
      return { damaged: n, why: (e as Error).message };
    }
  });
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** Run one case: fixture, step with a fault, checks, reconcile, re-run, undo, exact restore. */
export async function runCase(lab: Lab, step: StepCase, fault: Fault): Promise<CaseResult> {
  const t0 = Date.now();
  const { host, control, topo } = lab;
  const n = ++lab.seq;
  const journal = join(lab.dir, `journal-${n}`);
  const env = { RDPFIX_JOURNAL_KEY: join(lab.dir, 'journal.key'), RDPFIX_JOURNAL: journal };
  const target = host.ssh.target;
  const problems: string[] = [];
  const notes: string[] = [];
  const before = await control.reset(host.root, host.statePath, step.fixture);
  const stepArgs = [...step.args(before), '--backup-dir', WIN_BACKUP, '--target', target, '--json', '--journal', journal];
  const run1 = `fault${n}a-${Date.now().toString(36)}`;
  let hit = fault.kind === 'none' || fault.kind === 'full-disk';
  let first: CliRun;
  const remote: { first?: number; last?: number } = {};
  // Every remote script process seen: a dropped session leaves its pwsh running as an orphan
  // (no longer below sshd), which would save its stale twin over the next case's if not waited for.
  const seen = new Set<number>();
  try {
    if (fault.kind === 'full-disk') await fillDisk(host, fault.roomPages ?? 0);
    const started = Date.now();
    const p = startCli(topo, step.script, stepArgs, { ...env, RDPFIX_RUN_ID: run1 });
    // When the remote script runs, relative to the client's start (for the report and the delays).
    const poll = setInterval(() => {
      const pids = host.remotePwshPids();
      for (const x of pids) seen.add(x);
      if (pids.length) {
        remote.first ??= Date.now() - started;
        remote.last = Date.now() - started;
      }
    }, 100);
    p.exited.then(() => clearInterval(poll));
    if (fault.kind === 'client-kill') {
      await new Promise((r) => setTimeout(r, fault.delayMs ?? 0));
      // Its ssh child outlives a node-only kill and may not have connected yet: waited for below.
      if (p.pid) for (const x of descendants(p.pid)) seen.add(x);
      hit = p.running && kill(p.pid, !!fault.group);
    } else if (fault.kind === 'drop' || fault.kind === 'remote-kill') {
      const appeared = await waitFor(() => host.remotePwshPids().length > 0 || !p.running, 60_000);
      if (appeared && p.running) {
        await new Promise((r) => setTimeout(r, fault.delayMs ?? 0));
        for (const x of host.remotePwshPids()) seen.add(x);
        const victims = fault.kind === 'drop' ? host.ssh.sshdSessionPids() : host.remotePwshPids();
        hit = victims.map((v) => kill(v)).some(Boolean);
      }
    }
    first = await finishCli(p, started);
    const waited = await waitSessionsGone(host, [...seen]);
    if (waited > 50) notes.push(`the remote side went on ${waited} ms after the client ended`);
  } catch (e) {
    await unmountDisk(host);
    throw e;
  }
  const firstStatus = typeof first.json?.status === 'string' ? (first.json.status as string) : null;
  const after = await control.state(host.statePath);
  const diff = stateDiff(before, after);
  const left = diff === '' ? 'unchanged' : 'changed';
  const records = targetRecords(host);
  const files = backupFiles(host);
  const withRecord = records.filter((r) => r.record);
  const recordPhases = withRecord.map((r) => String((r.record as { phase?: unknown }).phase ?? '?'));
  for (const r of records) if (r.error) problems.push(`a damaged record in ${r.folder}: ${r.error}`);

  // The target is either unchanged, or changed with a complete backup and a target record.
  if (left === 'changed') {
    if (records.length === 0) problems.push(`changed with no backup folder:\n${diff}`);
    for (const r of records) if (r.files.filter((f) => f !== 'record.json').length === 0 && r.record) notes.push(`backup folder ${r.folder} holds only its record`);
    const empty = files.filter((f) => f.size === 0);
    if (empty.length) problems.push(`changed, with empty backup files: ${empty.map((f) => f.path).join(', ')}`);
    if (withRecord.length === 0) problems.push(`changed with no target record (backup folders: ${records.map((r) => `${r.folder}[${r.files.join(' ')}]`).join('; ')})`);
  }
  // One record per step run: one run made at most one backup folder with a record.
  if (withRecord.length > 1) problems.push(`${withRecord.length} records for one run: ${withRecord.map((r) => r.folder).join(', ')}`);

  if (fault.kind === 'full-disk') await freeDisk(host);
  let reconciled: CaseResult['reconciled'] = 'not-available';
  let rerun: string | null = null;
  let restoredExact: boolean | null = null;
  try {
    if (hasReconcile()) {
      // Right after a kill with no record yet, reconcile says the outcome is unknown until the
      // channel could no longer start the step (lib/reconcile.ts startGraceMs): asked again, as an
      // admin would, until it knows.
      const waitFrom = Date.now();
      let rc = await runCli(topo, 'undo.ts', ['--reconcile', '--target', target, '--journal', journal, '--json'], env);
      const young = (r: CliRun) => r.code === 1 && Array.isArray(r.json?.results) && (r.json!.results as Array<{ state?: string; detail?: string }>).some((x) => x.state === 'unknown' && /may still start it/.test(x.detail ?? ''));
      while (young(rc) && Date.now() - waitFrom < 100_000) {
        await new Promise((r) => setTimeout(r, 5000));
        rc = await runCli(topo, 'undo.ts', ['--reconcile', '--target', target, '--journal', journal, '--json'], env);
      }
      if (Date.now() - waitFrom > 5000) notes.push(`reconcile waited ${Math.round((Date.now() - waitFrom) / 1000)} s for the channel's start window`);
      reconciled = rc.code === 0 ? 'ok' : 'failed';
      if (rc.code !== 0) problems.push(`undo --reconcile exit ${rc.code}: ${rc.stdout.slice(-800)}`);
      // A second reconcile finds nothing open and adds nothing (no entry duplicated).
      const entries1 = journalEntries(journal).length;
      const rc2 = await runCli(topo, 'undo.ts', ['--reconcile', '--target', target, '--journal', journal, '--json'], env);
      if (rc2.code !== 0 || journalEntries(journal).length !== entries1) problems.push(`a second undo --reconcile: exit ${rc2.code}, journal ${entries1} -> ${journalEntries(journal).length} files`);
    }
    const recordComplete = recordPhases.includes('complete');
    const completed = firstStatus === 'changed' || recordComplete;
    // Re-run the step (after reconcile): a change the record says completed is not made again.
    const run2 = `fault${n}b-${Date.now().toString(36)}`;
    let undoRuns = [run1];
    if (completed || left === 'changed') {
      const again = await runCli(topo, step.script, stepArgs, { ...env, RDPFIX_RUN_ID: run2 });
      rerun = typeof again.json?.status === 'string' ? (again.json.status as string) : `exit ${again.code}`;
      if (completed && rerun !== 'ok') problems.push(`re-run after a completed change said ${rerun}, not ok: ${again.stdout.slice(-600)}`);
      if (!completed && !['changed', 'ok'].includes(rerun)) problems.push(`re-run after an interrupted change said ${rerun}: ${again.stdout.slice(-600)}`);
      const afterRerun = targetRecords(host).filter((r) => r.record).length;
      if (completed && afterRerun !== withRecord.length) notes.push(`the ok re-run left ${afterRerun - withRecord.length} record(s) more`);
      undoRuns = [run2, run1];
    }
    // Undo newest first; then the twin must be exactly as before the step.
    for (const r of undoRuns) {
      const u = await runCli(topo, 'undo.ts', ['--run', r, '--yes', '--journal', journal, '--json'], env);
      const st = typeof u.json?.status === 'string' ? u.json.status : `exit ${u.code}`;
      const undone = Array.isArray(u.json?.changes) ? (u.json.changes as unknown[]).length : 0;
      notes.push(`undo --run of the ${r === run1 ? 'faulted' : 're-'}run: ${st}, ${undone} undone${u.code !== 0 && st !== 'nothing-to-undo' ? `: ${u.stdout.slice(-300)}` : ''}`);
    }
    const final = await control.state(host.statePath);
    const back = stateDiff(before, final);
    restoredExact = back === '';
    if (!restoredExact) problems.push(`not restored exactly (${left} after the fault, ${hasReconcile() ? 'reconciled' : 'no reconcile yet'}):\n${back}`);
  } finally {
    if (fault.kind === 'full-disk') await unmountDisk(host);
  }
  return {
    step: step.name,
    fault,
    left,
    hit,
    firstRun: { code: first.code, signal: first.signal, status: firstStatus, ms: first.ms, remoteFrom: remote.first ?? null, remoteTo: remote.last ?? null },
    records: withRecord.length,
    recordPhases,
    reconciled,
    rerun,
    restoredExact,
    problems,
    notes,
    ms: Date.now() - t0,
  };
}

/** A lab: topology, the twin's sshd, the control pwsh. */
export async function openLab(createTopology: (o: { kind: 'direct' }) => Promise<Topology>): Promise<Lab> {
  const topo = await createTopology({ kind: 'direct' });
  try {
    const dir = join(topo.tmpDir, 'faults');
    mkdirSync(dir, { recursive: true });
    const host = await startTwinSsh(topo, join(topo.tmpDir, 'twin'));
    return { topo, host, control: new TwinControl(), dir, seq: 0 };
  } catch (e) {
    await topo.destroy();
    throw e;
  }
}

export async function closeLab(lab: Lab | undefined): Promise<void> {
  if (!lab) return;
  lab.control.close();
  await unmountDisk(lab.host);
  await lab.host.ssh.stop();
  await lab.topo.destroy();
}
