// Execution channels. Every Windows-side step is one generated script (lib/ps.ts buildScript);
// a channel only carries that exact text to a PowerShell and brings back the output, from which the
// JSON result is extracted. Channels never re-quote or rewrite the script.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvError, StepError, UsageError } from './errors.ts';
import { encodeCommand, extractResult, psQuote } from './ps.ts';
import { findProgram } from './which.ts';
import { isDnsName, show, validateAzureResourceGroup, validateAzureSubscription, validateAzureVmName, validateHost } from './validate.ts';

export type Target =
  | { kind: 'local' }
  /** WinRM: `ssl` is HTTPS (winrms://); `user` means pwsh prompts for that account's password. */
  | { kind: 'winrm'; host: string; ssl: boolean; port?: number; user?: string }
  | { kind: 'ssh'; user: string; host: string; port?: number }
  | { kind: 'azure'; subscription: string; resourceGroup: string; vm: string };

export const WINRM_HTTP_PORT = 5985;
export const WINRM_HTTPS_PORT = 5986;

/** What each channel needs to work, said once (help, errors, printed next steps). */
export const CHANNEL_NEEDS = {
  local: 'local: this Windows machine, in an elevated PowerShell',
  winrm:
    'winrm://[USER@]HOST[:PORT]: WinRM over HTTP (port 5985); without USER your own Kerberos identity (HOST must be a name in your domain), ' +
    'with USER pwsh asks for the password in this terminal; an IP address or a host outside your domain must be in the WinRM TrustedHosts list and needs USER',
  winrms: 'winrms://[USER@]HOST[:PORT]: WinRM over HTTPS (port 5986, -UseSSL); the server needs an HTTPS listener with a certificate this client trusts for HOST',
  ssh: 'ssh://USER@HOST[:PORT]: OpenSSH server on Windows with key-based login (no password prompt)',
  azure: 'azure://SUBSCRIPTION/RESOURCE_GROUP/VM: the Azure CLI (`az login`), Run Command on the VM; runs as SYSTEM',
  pwshOnUnix: 'WinRM from Linux or macOS: pwsh with a WSMan client (Install-Module PSWSMan; Install-WSMan), which supports Negotiate/Basic, not Kerberos without extra setup',
} as const;

export const TARGET_HELP =
  'where Windows-side steps run: local (Windows only) | winrm://[USER@]HOST[:PORT] (WinRM HTTP, 5985) | ' +
  'winrms://[USER@]HOST[:PORT] (WinRM HTTPS, 5986) | ssh://USER@HOST[:PORT] | azure://SUBSCRIPTION/RESOURCE_GROUP/VM. ' +
  'USER is DOMAIN\\user, user@domain or user; with USER, pwsh prompts for the password in the terminal (never on the command line). ' +
  'WinRM over HTTP to an IP address or a host outside your domain needs it in TrustedHosts and a USER; HTTPS needs a certificate the client trusts; ' +
  'pwsh on Linux/macOS needs a WSMan client (PSWSMan)';

/** What a channel needs, for an error hint or a printed next step. */
export function channelNeeds(t: Target): string {
  if (t.kind === 'winrm') {
    const parts: string[] = [t.ssl ? CHANNEL_NEEDS.winrms : CHANNEL_NEEDS.winrm];
    if (process.platform !== 'win32') parts.push(CHANNEL_NEEDS.pwshOnUnix);
    return parts.join('; ');
  }
  return CHANNEL_NEEDS[t.kind];
}

const NETBIOS_DOMAIN = /^[A-Za-z0-9][A-Za-z0-9.\-]{0,62}$/;
const ACCOUNT = /^[\p{L}\p{N}_.\-$]{1,104}$/u;

/**
 * One validator for a Windows account in a target: DOMAIN\user, user@domain or user (letters,
 * digits and _ . - $; nothing a shell, ssh or PowerShell would read as syntax or an option).
 */
export function validateWindowsUser(value: string, what = 'user'): string {
  const v = String(value ?? '');
  const bad = (why: string) => new UsageError(`invalid ${what} ${show(value)}: ${why}`, 'expected DOMAIN\\user, user@domain or user (letters, digits and _ . - $)');
  if (!v) throw bad('it is empty');
  if (v.startsWith('-')) throw bad('it starts with "-", which would be read as an option');
  const slash = v.split('\\');
  const at = v.split('@');
  if (slash.length > 2 || at.length > 2 || (slash.length === 2 && at.length === 2)) throw bad('use one form: DOMAIN\\user or user@domain');
  if (slash.length === 2) {
    if (!NETBIOS_DOMAIN.test(slash[0]!)) throw bad(`${show(slash[0])} is not a domain name`);
    if (!ACCOUNT.test(slash[1]!)) throw bad('an account name has letters, digits and _ . - $ only');
    return v;
  }
  if (at.length === 2) {
    if (!ACCOUNT.test(at[0]!) || at[0]!.startsWith('-')) throw bad('an account name has letters, digits and _ . - $ only');
    if (!isDnsName(at[1]!)) throw bad(`${show(at[1])} is not a DNS domain`);
    return v;
  }
  if (!ACCOUNT.test(v)) throw bad('an account name has letters, digits and _ . - $ only');
  return v;
}

/** Split "USER@HOST" at the last @ (a UPN user has its own @). */
function splitUser(rest: string): { user?: string; hostPart: string } {
  const at = rest.lastIndexOf('@');
  return at < 0 ? { hostPart: rest } : { user: rest.slice(0, at), hostPart: rest.slice(at + 1) };
}

/** Parse a --target value; hostile, malformed or empty values are a UsageError (exit 2). */
export function parseTarget(spec: string): Target {
  const s = String(spec ?? '');
  // An empty value used to mean local: a variable that expanded to nothing must not pick a channel.
  if (s.trim() === '') throw new UsageError(`invalid --target ${show(spec)}: it is empty`, `expected ${TARGET_HELP}`);
  if (s.trim() !== s) throw new UsageError(`invalid --target ${show(spec)}: it has spaces at the ends`, `expected ${TARGET_HELP}`);
  if (s === 'local') return { kind: 'local' };
  const m = /^([a-z]+):\/\/(.*)$/.exec(s);
  if (!m) throw new UsageError(`invalid --target ${show(spec)}: expected ${TARGET_HELP}`);
  const [, scheme, rest] = m as unknown as [string, string, string];
  if (scheme === 'winrm' || scheme === 'winrms') {
    const { user, hostPart } = splitUser(rest);
    const h = validateHost(hostPart, `WinRM host in --target ${show(spec)}:`);
    const t: Target = { kind: 'winrm', host: h.host, ssl: scheme === 'winrms' };
    if (h.port && h.port !== (t.ssl ? WINRM_HTTPS_PORT : WINRM_HTTP_PORT)) t.port = h.port;
    if (user !== undefined) t.user = validateWindowsUser(user, `user in --target ${show(spec)}:`);
    return t;
  }
  if (scheme === 'ssh') {
    const { user, hostPart } = splitUser(rest);
    if (!user) throw new UsageError(`invalid --target ${show(spec)}: expected ssh://USER@HOST[:PORT]`);
    const h = validateHost(hostPart, `SSH host in --target ${show(spec)}:`);
    return { kind: 'ssh', user: validateWindowsUser(user, `SSH user in --target ${show(spec)}:`), host: h.host, ...(h.port ? { port: h.port } : {}) };
  }
  if (scheme === 'azure') {
    const parts = rest.split('/');
    if (parts.length !== 3) {
      throw new UsageError(`invalid --target ${show(spec)}: expected azure://SUBSCRIPTION/RESOURCE_GROUP/VM`);
    }
    return {
      kind: 'azure',
      subscription: validateAzureSubscription(decodeURIComponent(parts[0]!)),
      resourceGroup: validateAzureResourceGroup(parts[1]!),
      vm: validateAzureVmName(parts[2]!),
    };
  }
  throw new UsageError(`invalid --target ${show(spec)}: unknown scheme ${JSON.stringify(scheme)}; expected ${TARGET_HELP}`);
}

const hostText = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** A stable string for journals and output (default ports left out, so one server has one name). */
export function describeTarget(t: Target): string {
  switch (t.kind) {
    case 'local':
      return 'local';
    case 'winrm':
      return `${t.ssl ? 'winrms' : 'winrm'}://${t.user ? `${t.user}@` : ''}${hostText(t.host)}${t.port ? `:${t.port}` : ''}`;
    case 'ssh':
      return `ssh://${t.user}@${hostText(t.host)}${t.port ? `:${t.port}` : ''}`;
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

/**
 * Loader for a channel whose stdin is the user's terminal (the password prompt): the script comes
 * from a temporary file of ours instead (the script, never a password).
 */
function fileLoader(path: string, invoke: string): string {
  return [
    "$ErrorActionPreference = 'Stop'",
    `$rdpfixScript = [System.IO.File]::ReadAllText(${psQuote(path)}, (New-Object System.Text.UTF8Encoding $false))`,
    invoke,
  ].join('\n');
}

/**
 * The exact Invoke-Command line of a WinRM target. Without a user it runs as the current identity
 * (Kerberos/Negotiate); with one, Get-Credential asks for the password in the terminal, so the
 * password is never on a command line, in a file or in rdpfix's memory.
 */
export function invokeCommandLine(t: Extract<Target, { kind: 'winrm' }>): string {
  const parts = ['Invoke-Command', '-ComputerName', psQuote(t.host)];
  if (t.port) parts.push('-Port', String(t.port));
  if (t.ssl) parts.push('-UseSSL');
  if (t.user) {
    parts.push('-Credential', `(Get-Credential -UserName ${psQuote(t.user)} -Message ${psQuote(`rdpfix: the password of ${t.user} on ${t.host}`)})`);
  }
  parts.push('-ScriptBlock', '([scriptblock]::Create($rdpfixScript))');
  return parts.join(' ');
}

export interface ChannelRun {
  /** The program and its arguments, exactly as spawned (tests assert on these). */
  argv: string[];
  /** What is written to the program's standard input. */
  stdin: string;
  /** Temp file to create with the script text before running (azure, WinRM with a user). */
  scriptFile?: string;
  /** The program reads the user's terminal (a password prompt): stdin is inherited, not written. */
  interactive?: boolean;
}

/**
 * The exact command line for a channel. Exported so tests can assert it and so --explain can show
 * it. `scriptPath` is where the temp file of the azure channel (and of WinRM with a user) lives.
 */
export function channelCommand(target: Target, script: string, scriptPath = ''): ChannelRun {
  switch (target.kind) {
    case 'local':
      throw new Error('the local channel runs through node-powershell, not a command line');
    case 'winrm': {
      const exe = process.platform === 'win32' ? 'powershell.exe' : 'pwsh';
      if (target.user) {
        // Get-Credential needs an interactive pwsh (no -NonInteractive) and the terminal on stdin.
        const loader = fileLoader(scriptPath, invokeCommandLine(target));
        return { argv: [exe, '-NoProfile', '-EncodedCommand', encodeCommand(loader)], stdin: '', scriptFile: scriptPath, interactive: true };
      }
      const loader = stdinLoader(invokeCommandLine(target));
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
  /** Whether stdin is a terminal (default: process.stdin.isTTY); tests set it. */
  terminal?: boolean;
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
  const needsFile = target.kind === 'azure' || (target.kind === 'winrm' && !!target.user);
  if (target.kind === 'winrm' && target.user && !(opts.terminal ?? process.stdin.isTTY)) {
    throw new EnvError(
      `${describeTarget(target)} asks for the password of ${target.user}, and that prompt needs a terminal: standard input is not one`,
      `run it from an interactive terminal, or use ${target.ssl ? 'winrms' : 'winrm'}://${hostText(target.host)} to run as your current identity (Kerberos)`,
    );
  }
  requireProgram(exe);
  let dir: string | undefined;
  try {
    let scriptPath = '';
    if (needsFile) {
      dir = await mkdtemp(join(tmpdir(), 'rdpfix-'));
      scriptPath = join(dir, 'step.ps1');
      await writeFile(scriptPath, script, { mode: 0o600 });
    }
    const run = channelCommand(target, script, scriptPath);
    const [cmd, ...args] = run.argv as [string, ...string[]];
    const { $ } = await import('zx'); // loaded only when a channel really runs something
    if (run.interactive) process.stderr.write(`pwsh asks for the password of ${(target as { user: string }).user} (typed in this terminal, not shown)\n`);
    const started = Date.now();
    // zx's p.stdout decodes every chunk it read on its own, so a UTF-8 character split across two
    // reads turns into two U+FFFD (seen over ssh in a long result): keep the raw chunks (zx's
    // `store` option) and decode each stream once, whole.
    const store = { stdout: [] as (string | Buffer)[], stderr: [] as (string | Buffer)[], stdall: [] as (string | Buffer)[] };
    const decoded = (chunks: (string | Buffer)[]) => Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c))).toString('utf8');
    // Always end stdin (an empty Buffer still closes it), so a program that reads it never waits on
    // us; an interactive run gets the terminal instead.
    const p = run.interactive
      ? await $({ stdio: ['inherit', 'pipe', 'pipe'], nothrow: true, quiet: true, timeout, store })`${cmd} ${args}`
      : await $({ input: Buffer.from(run.stdin, 'utf8'), nothrow: true, quiet: true, timeout, store })`${cmd} ${args}`;
    // zx stops the program at the timeout (SIGTERM: ssh then exits 255, others with no code): say
    // so, rather than "no result (exit 255)", which reads like a lost connection.
    const timedOut = Date.now() - started >= timeout;
    const stdout = decoded(store.stdout);
    const stderr = decoded(store.stderr);
    let output = stdout;
    if (target.kind === 'azure' && !timedOut) {
      if (p.exitCode !== 0) throw new StepError(`az vm run-command failed (exit ${p.exitCode})`, stderr.trim().split('\n').slice(-3).join(' '));
      const m = azureMessage(stdout);
      output = m.stdout + '\n' + m.stderr;
    }
    try {
      return { result: extractResult<T>(output), output, channel: describeTarget(target) };
    } catch (e) {
      const tail = (stderr || output).trim().split('\n').slice(-3).join(' | ');
      const why = timedOut
        ? `timed out after ${seconds(timeout)} without a result (the channel's timeout; ${cmd} was stopped)`
        : `${(e as Error).message} (exit ${p.exitCode})`;
      throw new StepError(`${describeTarget(target)}: ${why}`, [tail, target.kind === 'winrm' ? `this channel needs: ${channelNeeds(target)}` : ''].filter(Boolean).join('\n  '));
    }
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/**
 * TEST SEAM, off in production: RDPFIX_TEST_LOCAL_PWSH lets a test drive the local channel with the
 * real pwsh on Linux or macOS (test/lib/channels-local.test.ts). `1` skips the "this is not
 * Windows" refusal and the elevation check and runs pwsh instead of powershell.exe;
 * `check-elevation` does the same but keeps the elevation check (Windows-only, so off Windows it
 * must end in a clear EnvError). Any other value, or none, is production behaviour. It is ignored
 * on Windows, so it can never switch off the elevation check where the local channel really runs.
 */
export const LOCAL_PWSH_SEAM = 'RDPFIX_TEST_LOCAL_PWSH';

function localSeam(): 'off' | 'skip-elevation' | 'check-elevation' {
  if (process.platform === 'win32') return 'off';
  const v = process.env[LOCAL_PWSH_SEAM];
  return v === '1' ? 'skip-elevation' : v === 'check-elevation' ? 'check-elevation' : 'off';
}

const ELEVATED =
  '([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)';

/** PowerShell's colours (pwsh writes errors with ANSI escapes even to a pipe) out of our messages. */
const plain = (text: string) => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').trim();
const lastLines = (text: string, n = 3) => plain(text).split(/\r?\n/).filter(Boolean).slice(-n).join(' | ');

async function runLocal<T>(script: string, timeout: number): Promise<RunOutput<T>> {
  const seam = localSeam();
  if (process.platform !== 'win32' && seam === 'off') {
    throw new EnvError(
      `--target local runs PowerShell on this Windows machine, but this is ${process.platform}`,
      'use --target winrm://HOST, winrms://HOST, ssh://USER@HOST or azure://SUB/RG/VM, or --emit to print the script',
    );
  }
  const { PowerShell } = await import('node-powershell');
  const ps = new PowerShell({
    ...(seam === 'off' ? {} : { executable: requireProgram('pwsh') }),
    executableOptions: { '-NoProfile': true, '-NonInteractive': true, '-ExecutionPolicy': 'Bypass' },
    invocationTimeout: timeout,
    // node-powershell calls an invocation that wrote anything to stderr a failure and drops its
    // stdout; a step's native commands may write to stderr while the result is on stdout.
    throwOnInvocationError: false,
  });
  /** One invocation: its stdout and stderr; a timeout or a dead shell is a StepError. */
  const invoke = async (command: string, what: string): Promise<{ stdout: string; stderr: string }> => {
    let r;
    try {
      r = await ps.invoke(command);
    } catch (e) {
      throw new StepError(`local: PowerShell ended during ${what}`, lastLines((e as Error).message));
    }
    // A timed-out invocation has errors and no output at all (node-powershell stops waiting for it).
    if (r.hadErrors && r.stdout === undefined) throw new StepError(`local: ${what} timed out after ${seconds(timeout)} without a result (the channel's timeout)`);
    return { stdout: r.stdout?.toString('utf8') ?? '', stderr: r.stderr?.toString('utf8') ?? '' };
  };
  try {
    if (seam !== 'skip-elevation') {
      const admin = await invoke(ELEVATED, 'the elevation check');
      if (!/True/i.test(admin.stdout)) {
        if (admin.stderr.trim()) {
          throw new EnvError(`could not tell whether this PowerShell is elevated: ${lastLines(admin.stderr, 1)}`, 'run the local channel in an elevated Windows PowerShell (Run as Administrator)');
        }
        throw new EnvError('this step needs an elevated PowerShell', 'run your terminal as Administrator');
      }
    }
    // node-powershell carries finished text only: the script goes in as base64 so that no value is
    // ever re-quoted by its template interpolation (which would expand $(...)).
    const b64 = Buffer.from(script, 'utf8').toString('base64');
    const r = await invoke(`& ([scriptblock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('${b64}'))))`, 'the script');
    try {
      return { result: extractResult<T>(r.stdout), output: r.stdout, channel: 'local' };
    } catch (e) {
      throw new StepError(`local: ${(e as Error).message}`, lastLines(r.stderr || r.stdout));
    }
  } finally {
    await disposeShell(ps);
  }
}

/**
 * End the shell, bounded: a pwsh still busy after a timeout that ignores SIGTERM gets SIGKILL. Then
 * close our ends of its pipes: a process it started (a hung native tool, or the real pwsh behind a
 * launcher such as the .NET tool shim) inherited them and would keep rdpfix waiting until it ends.
 */
async function disposeShell(ps: { dispose(signal?: NodeJS.Signals): Promise<void>; streams: { stdin: { destroy(): void }; stdout: { destroy(): void }; stderr: { destroy(): void } } }): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gone = ps.dispose().then(() => true, () => true);
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), 5000); });
  const done = await Promise.race([gone, late]);
  clearTimeout(timer);
  if (!done) await ps.dispose('SIGKILL').catch(() => undefined);
  for (const s of [ps.streams.stdin, ps.streams.stdout, ps.streams.stderr]) s.destroy();
}
