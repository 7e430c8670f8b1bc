// Execution channels. Every Windows-side step is one generated script (lib/ps.ts buildScript);
// a channel only carries that exact text to a PowerShell and brings back the output, from which the
// JSON result is extracted. Channels never re-quote or rewrite the script.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvError, StepError, UsageError } from './errors.ts';
import { encodeCommand, extractResult, psQuote } from './ps.ts';
import { findProgram } from './which.ts';
import {
  validateAzureResourceGroup,
  validateAzureSubscription,
  validateAzureVmName,
  validateHost,
} from './validate.ts';

export type Target =
  | { kind: 'local' }
  | { kind: 'winrm'; host: string }
  | { kind: 'ssh'; user: string; host: string; port?: number }
  | { kind: 'azure'; subscription: string; resourceGroup: string; vm: string };

export const TARGET_HELP =
  'where Windows-side steps run: local | winrm://HOST | ssh://USER@HOST[:PORT] | azure://SUBSCRIPTION/RESOURCE_GROUP/VM';

/** Parse a --target value; hostile or malformed values are a UsageError (exit 2). */
export function parseTarget(spec: string): Target {
  const s = String(spec ?? '').trim();
  if (s === '' || s === 'local') return { kind: 'local' };
  const m = /^([a-z]+):\/\/(.*)$/.exec(s);
  if (!m) throw new UsageError(`invalid --target ${JSON.stringify(spec)}: expected ${TARGET_HELP}`);
  const [, scheme, rest] = m as unknown as [string, string, string];
  if (scheme === 'winrm') {
    const h = validateHost(rest, 'WinRM host');
    if (h.port) throw new UsageError(`invalid --target ${JSON.stringify(spec)}: WinRM takes a host name without a port`);
    return { kind: 'winrm', host: h.host };
  }
  if (scheme === 'ssh') {
    const at = rest.indexOf('@');
    if (at < 1) throw new UsageError(`invalid --target ${JSON.stringify(spec)}: expected ssh://USER@HOST[:PORT]`);
    const user = rest.slice(0, at);
    // Windows account names: no quotes, spaces at the ends, or ssh option syntax.
    if (!/^[\p{L}\p{N}_.\-\\$]{1,104}$/u.test(user) || user.startsWith('-')) {
      throw new UsageError(`invalid SSH user ${JSON.stringify(user)}: expected letters, digits and _ . - \\ $`);
    }
    const h = validateHost(rest.slice(at + 1), 'SSH host');
    return { kind: 'ssh', user, host: h.host, ...(h.port ? { port: h.port } : {}) };
  }
  if (scheme === 'azure') {
    const parts = rest.split('/');
    if (parts.length !== 3) {
      throw new UsageError(`invalid --target ${JSON.stringify(spec)}: expected azure://SUBSCRIPTION/RESOURCE_GROUP/VM`);
    }
    return {
      kind: 'azure',
      subscription: validateAzureSubscription(decodeURIComponent(parts[0]!)),
      resourceGroup: validateAzureResourceGroup(parts[1]!),
      vm: validateAzureVmName(parts[2]!),
    };
  }
  throw new UsageError(`invalid --target ${JSON.stringify(spec)}: unknown scheme ${JSON.stringify(scheme)}; expected ${TARGET_HELP}`);
}

/** A stable string for journals and output. */
export function describeTarget(t: Target): string {
  switch (t.kind) {
    case 'local':
      return 'local';
    case 'winrm':
      return `winrm://${t.host}`;
    case 'ssh':
      return `ssh://${t.user}@${t.host.includes(':') ? `[${t.host}]` : t.host}${t.port ? `:${t.port}` : ''}`;
    case 'azure':
      return `azure://${t.subscription}/${t.resourceGroup}/${t.vm}`;
  }
}

const INSTALL: Record<string, string> = {
  pwsh:
    'install PowerShell 7: on Debian/Ubuntu add packages.microsoft.com and `apt-get install powershell` ' +
    '(https://learn.microsoft.com/powershell/scripting/install/install-debian); on macOS `brew install powershell/tap/powershell`',
  'powershell.exe': 'Windows PowerShell 5.1 ships with Windows; make sure %SystemRoot%\\System32\\WindowsPowerShell\\v1.0 is on PATH',
  az: 'install the Azure CLI: `curl -sL https://aka.ms/InstallAzureCLIDeb | sudo bash` on Debian/Ubuntu, `winget install Microsoft.AzureCLI` on Windows, `brew install azure-cli` on macOS; then `az login`',
  ssh: 'install an OpenSSH client: `apt-get install openssh-client` on Debian/Ubuntu; on Windows `Add-WindowsCapability -Online -Name OpenSSH.Client~~~~0.0.1.0`',
};

/** Find a program on PATH (PATHEXT-aware on Windows); EnvError with the install step if missing. */
export function requireProgram(name: string): string {
  const found = findProgram(name);
  if (found) return found;
  throw new EnvError(`required program '${name}' was not found on PATH`, INSTALL[name]);
}

/** Loader sent as -EncodedCommand: reads the real script from stdin as UTF-8 and runs it. */
function stdinLoader(invoke: string): string {
  return [
    "$ErrorActionPreference = 'Stop'",
    '[Console]::InputEncoding = New-Object System.Text.UTF8Encoding $false',
    '$rdpfixScript = [Console]::In.ReadToEnd()',
    invoke,
  ].join('\n');
}

export interface ChannelRun {
  /** The program and its arguments, exactly as spawned (tests assert on these). */
  argv: string[];
  /** What is written to the program's standard input. */
  stdin: string;
  /** Temp file to create with the script text before running (azure). */
  scriptFile?: string;
}

/**
 * The exact command line for a channel. Exported so tests can assert it and so --explain can show
 * it. `scriptPath` is where the azure channel's temp file lives.
 */
export function channelCommand(target: Target, script: string, scriptPath = ''): ChannelRun {
  switch (target.kind) {
    case 'local':
      throw new Error('the local channel runs through node-powershell, not a command line');
    case 'winrm': {
      const exe = process.platform === 'win32' ? 'powershell.exe' : 'pwsh';
      const loader = stdinLoader(
        `Invoke-Command -ComputerName ${psQuote(target.host)} -ScriptBlock ([scriptblock]::Create($rdpfixScript))`,
      );
      return { argv: [exe, '-NoProfile', '-NonInteractive', '-EncodedCommand', encodeCommand(loader)], stdin: script };
    }
    case 'ssh': {
      // The script travels on stdin: OpenSSH on Windows hands the command to cmd.exe, whose
      // 8,191-character limit a whole encoded script would exceed.
      const loader = stdinLoader('& ([scriptblock]::Create($rdpfixScript))');
      const argv = ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15'];
      if (target.port) argv.push('-p', String(target.port));
      argv.push('--', `${target.user}@${target.host}`);
      argv.push(`powershell -NoProfile -NonInteractive -EncodedCommand ${encodeCommand(loader)}`);
      return { argv, stdin: script };
    }
    case 'azure':
      return {
        argv: [
          'az', 'vm', 'run-command', 'invoke',
          '--subscription', target.subscription,
          '--resource-group', target.resourceGroup,
          '--name', target.vm,
          '--command-id', 'RunPowerShellScript',
          '--scripts', `@${scriptPath}`,
          '--output', 'json',
        ],
        stdin: '',
        scriptFile: scriptPath,
      };
  }
}

/** Azure returns { value: [ { code: 'ComponentStatus/StdOut/succeeded', message }, {StdErr} ] }. */
export function azureMessage(azJson: string): { stdout: string; stderr: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(azJson);
  } catch {
    throw new StepError('az vm run-command returned output that is not JSON', azJson.slice(0, 300));
  }
  const value = (doc as { value?: { code?: string; message?: string }[] })?.value;
  if (!Array.isArray(value) || value.length === 0) throw new StepError('az vm run-command returned no value[] in its JSON');
  const out = value.find((v) => /StdOut/i.test(v.code ?? '')) ?? value[0]!;
  const err = value.find((v) => /StdErr/i.test(v.code ?? ''));
  return { stdout: out.message ?? '', stderr: err?.message ?? '' };
}

export interface RunOptions {
  /** Milliseconds before the channel is abandoned. */
  timeoutMs?: number;
}

export interface RunOutput<T> {
  result: T;
  output: string;
  channel: string;
}

/** Run a generated script through a channel and return its JSON result. */
export async function runScript<T = Record<string, unknown>>(target: Target, script: string, opts: RunOptions = {}): Promise<RunOutput<T>> {
  const timeout = opts.timeoutMs ?? (target.kind === 'azure' ? 20 * 60_000 : 10 * 60_000);
  if (target.kind === 'local') return runLocal<T>(script, timeout);
  const exe = target.kind === 'winrm' ? (process.platform === 'win32' ? 'powershell.exe' : 'pwsh') : target.kind === 'ssh' ? 'ssh' : 'az';
  requireProgram(exe);
  let dir: string | undefined;
  try {
    let scriptPath = '';
    if (target.kind === 'azure') {
      dir = await mkdtemp(join(tmpdir(), 'rdpfix-'));
      scriptPath = join(dir, 'step.ps1');
      await writeFile(scriptPath, script, { mode: 0o600 });
    }
    const run = channelCommand(target, script, scriptPath);
    const [cmd, ...args] = run.argv as [string, ...string[]];
    const { $ } = await import('zx'); // loaded only when a channel really runs something
    // Always end stdin (an empty Buffer still closes it), so a program that reads it never waits on us.
    const p = await $({ input: Buffer.from(run.stdin, "utf8"), nothrow: true, quiet: true, timeout })`${cmd} ${args}`;
    let output = p.stdout;
    if (target.kind === 'azure') {
      if (p.exitCode !== 0) throw new StepError(`az vm run-command failed (exit ${p.exitCode})`, p.stderr.trim().split('\n').slice(-3).join(' '));
      const m = azureMessage(p.stdout);
      output = m.stdout + '\n' + m.stderr;
    }
    try {
      return { result: extractResult<T>(output), output, channel: describeTarget(target) };
    } catch (e) {
      const tail = (p.stderr || output).trim().split('\n').slice(-3).join(' | ');
      throw new StepError(`${describeTarget(target)}: ${(e as Error).message} (exit ${p.exitCode})`, tail);
    }
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

async function runLocal<T>(script: string, timeout: number): Promise<RunOutput<T>> {
  if (process.platform !== 'win32') {
    throw new EnvError(
      `--target local runs PowerShell on this Windows machine, but this is ${process.platform}`,
      'use --target winrm://HOST, ssh://USER@HOST or azure://SUB/RG/VM, or --emit to print the script',
    );
  }
  const { PowerShell } = await import('node-powershell');
  const ps = new PowerShell({
    executableOptions: { '-NoProfile': true, '-NonInteractive': true, '-ExecutionPolicy': 'Bypass' },
    invocationTimeout: timeout,
  });
  try {
    const admin = await ps.invoke(
      '([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)',
    );
    if (!/True/i.test(admin.raw)) throw new EnvError('this step needs an elevated PowerShell', 'run your terminal as Administrator');
    // node-powershell carries finished text only: the script goes in as base64 so that no value is
    // ever re-quoted by its template interpolation (which would expand $(...)).
    const b64 = Buffer.from(script, 'utf8').toString('base64');
    const r = await ps.invoke(`& ([scriptblock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('${b64}'))))`);
    return { result: extractResult<T>(r.raw), output: r.raw, channel: 'local' };
  } finally {
    await ps.dispose();
  }
}
