// Debian's real OpenSSH server as a lab host for the ssh:// channel, and the client side that
// reaches it from the client namespace.
//
// HOW IT IS RUN: `sshd -D -e -f FILE` in the server namespace with a config of its own in the
// topology's temp dir: its own ed25519 host key, ListenAddress = the server's lab address only,
// key login only (PasswordAuthentication/KbdInteractiveAuthentication no), AuthorizedKeysFile =
// a file the test writes, PidFile in the temp dir, UsePAM no (no PAM session, no lastlog), and
// StrictModes no (the key file's directories lead up through /tmp, which is world-writable).
// The user is root with PermitRootLogin prohibit-password (no account is created on the machine);
// sshd without PAM refuses a root whose password field is locked ("!..."): Debian's "*" is fine.
// Privilege separation needs /run/sshd; Debian's service creates it, so we do when it is missing.
//
// THE REMOTE `powershell`: the channel runs `powershell -NoProfile -NonInteractive -EncodedCommand
// ...` as the remote command. sshd's SetEnv puts PATH=<temp>/bin:... into every session, and
// <temp>/bin/powershell is a shell script that prints a banner on stdout and a warning on stderr
// (the noise a real host adds) and then execs the real pwsh with the channel's arguments and stdin.
//
// THE CLIENT SIDE: OpenSSH's ssh reads ~/.ssh/config of the passwd entry (it ignores $HOME), and
// the machine's real ~/.ssh is not ours to change. `ip netns exec` bind-mounts every entry of
// /etc/netns/<namespace>/ over /etc/<entry> for the command it runs, so
// /etc/netns/<client ns>/ssh/ssh_config becomes /etc/ssh/ssh_config for everything started in the
// client namespace: there it names our key (IdentityFile, IdentitiesOnly), our known_hosts with the
// lab host's key (StrictHostKeyChecking yes: no prompt, no trust on first use). The channel's argv
// is spawned unchanged; only the system-wide client config differs, as on a configured workstation.
// (A ~/.ssh/config of the user running the tests would still be read first, as in production.)
import { mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runScript, parseTarget } from '../../scripts/lib/channels.ts';
import { LAB_PREFIX, run, type Spawned, type Topology } from './netns.ts';
import { which } from './prereq.ts';

const ETC_NETNS = '/etc/netns';

export interface SshHost {
  user: 'root';
  host: string;
  port: number;
  /** The --target value: ssh://root@HOST:PORT */
  target: string;
  sshd: Spawned;
  /** sshd's own temp dir (config, host key, authorized_keys, bin/powershell). */
  dir: string;
  /** Every process below the listening sshd: the per-connection sshd processes and their shell, wrapper and pwsh. */
  sessionPids(): number[];
  /** The per-connection sshd processes only (what carries the TCP connection). */
  sshdSessionPids(): number[];
  /** Stop sshd and remove the client namespace's ssh config. Idempotent; topology.destroy() also kills sshd. */
  stop(): Promise<void>;
}

/** What the ssh lab needs beyond root and namespaces; empty when all is there. */
export function sshMissing(): string[] {
  const missing: string[] = [];
  for (const p of ['sshd', 'ssh', 'ssh-keygen']) if (!which(p)) missing.push(`${p} (apt-get install --no-install-recommends openssh-server openssh-client)`);
  return missing;
}

/** Remove /etc/netns/rfx-<pid>-* entries of lab runs whose process is gone (a crash before stop()). */
export function cleanupStaleSshConfig(): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(ETC_NETNS);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = new RegExp(`^${LAB_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // alive: another run's
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    rmSync(join(ETC_NETNS, name), { recursive: true, force: true });
    removed.push(join(ETC_NETNS, name));
  }
  removeEtcNetnsIfEmpty();
  return removed;
}

function removeEtcNetnsIfEmpty(): void {
  try {
    rmdirSync(ETC_NETNS); // only succeeds when empty: never removes what others put there
  } catch { /* not empty or not there */ }
}

/** Direct and indirect children of a pid, from /proc (ppid is field 4 of /proc/PID/stat). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const kids = parent.get(ppid) ?? [];
    kids.push(Number(name));
    parent.set(ppid, kids);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const k of parent.get(p) ?? []) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

/** A process's command name (/proc/PID/comm), '' when it is gone. */
export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

async function keygen(file: string, comment: string): Promise<string> {
  await run([which('ssh-keygen')!, '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { check: true, timeoutMs: 15_000 });
  return readFileSync(`${file}.pub`, 'utf8').trim();
}

export interface SshdOptions {
  port?: number;
  /** Absolute path of the real pwsh the remote `powershell` runs. */
  pwsh: string;
  /**
   * Deliver pwsh's stdout in blocks of exactly this many bytes (dd ibs/obs reblocking), as a
   * network may cut a stream anywhere: with an odd size, the cuts fall inside multi-byte UTF-8
   * characters. The bytes are unchanged; pwsh's exit code is then dd's.
   */
  stdoutBlock?: number;
  /**
   * The wrapper's last line instead of `exec pwsh "$@"`: shell text that must pass "$@" (the
   * channel's arguments) and stdin on (test/lab/twin-ssh.ts runs the twin host this way).
   */
  command?: string;
}

/** Start sshd on the topology's server and configure ssh in its client namespace. */
export async function startSshd(topo: Topology, opts: SshdOptions): Promise<SshHost> {
  const port = opts.port ?? 2222;
  const host = topo.server.addr;
  const dir = join(topo.tmpDir, 'sshd');
  const clientDir = join(topo.tmpDir, 'ssh-client');
  const etcDir = join(ETC_NETNS, topo.client.ns);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(clientDir, { recursive: true });
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755, recursive: true });

  const hostPub = await keygen(join(dir, 'host_ed25519'), 'rdpfix-lab-host');
  const clientPub = await keygen(join(clientDir, 'id_ed25519'), 'rdpfix-lab-client');
  writeFileSync(join(dir, 'authorized_keys'), `${clientPub}\n`, { mode: 0o600 });

  const wrapper = join(dir, 'bin', 'powershell');
  const env = process.env.DOTNET_ROOT ? `export DOTNET_ROOT='${process.env.DOTNET_ROOT.replace(/'/g, `'\\''`)}'\n` : '';
  writeFileSync(
    wrapper,
    `#!/bin/sh
# The lab host's "powershell": a real host's noise around the real pwsh (args and stdin unchanged).
echo 'Welcome to the rdpfix lab host. Authorized use only. (a banner on stdout)'
echo 'WARNING: lab host: a warning on stderr before PowerShell starts' >&2
${env}${opts.command ? opts.command : opts.stdoutBlock ? `'${opts.pwsh}' "$@" | dd ibs=65536 obs=${Math.trunc(opts.stdoutBlock)} status=none` : `exec '${opts.pwsh}' "$@"`}
`,
  );
  chmodSync(wrapper, 0o755);

  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      `ListenAddress ${host}`,
      `HostKey ${join(dir, 'host_ed25519')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'PermitUserEnvironment no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      'PrintMotd no',
      'PrintLastLog no',
      // The remote command finds our `powershell` first, as a Windows host's PATH finds powershell.exe.
      `SetEnv PATH=${join(dir, 'bin')}:/usr/local/bin:/usr/bin:/bin`,
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );

  // The client namespace's /etc/ssh (see the header).
  mkdirSync(join(etcDir, 'ssh'), { recursive: true });
  writeFileSync(join(clientDir, 'known_hosts'), `[${host}]:${port} ${hostPub.split(' ').slice(0, 2).join(' ')}\n`);
  writeFileSync(
    join(etcDir, 'ssh', 'ssh_config'),
    [
      '# rdpfix lab: the client namespace\'s system-wide ssh config (test/lab/sshd.ts)',
      'Host *',
      `  IdentityFile ${join(clientDir, 'id_ed25519')}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${join(clientDir, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  UpdateHostKeys no',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
  );

  let sshd: Spawned | undefined;
  const stop = async () => {
    if (sshd) {
      // The session processes are not in sshd's process group after setsid(): kill them first.
      for (const p of descendants(sshd.pid!)) {
        try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
      }
      await sshd.kill(500);
    }
    rmSync(etcDir, { recursive: true, force: true });
    removeEtcNetnsIfEmpty();
  };
  try {
    sshd = topo.spawn('server', [which('sshd')!, '-D', '-e', '-f', config]);
    await sshd.waitForOutput(/Server listening on \S+ port \d+/, 10_000);
    await topo.waitListening('server', port, host);
  } catch (e) {
    await stop();
    throw e;
  }
  const s = sshd;
  return {
    user: 'root',
    host,
    port,
    target: `ssh://root@${host}:${port}`,
    sshd: s,
    dir,
    sessionPids: () => descendants(s.pid!),
    sshdSessionPids: () => descendants(s.pid!).filter((p) => comm(p) === 'sshd'),
    stop,
  };
}

// ---------------------------------------------------------------- client side (runs in the client namespace)

export type ChannelOutcome =
  | { ok: true; result: Record<string, unknown>; output: string; channel: string; ms: number }
  | { ok: false; error: { name: string; message: string; hint?: string; exitCode?: number }; ms: number };

/**
 * Called through topology.call('client', ...): the channel's real runScript, from the client
 * namespace, with its result or its error as JSON (an error's class and hint survive the trip).
 * The outcome is written to `outFile` (same filesystem, any namespace) rather than returned: a
 * result of a few hundred KB on the child's stdout could be cut short by its process.exit().
 */
export async function runChannel(target: string, script: string, timeoutMs: number | null, outFile: string): Promise<boolean> {
  const t0 = Date.now();
  let outcome: ChannelOutcome;
  try {
    const out = await runScript(parseTarget(target), script, timeoutMs === null ? {} : { timeoutMs });
    outcome = { ok: true, result: out.result, output: out.output, channel: out.channel, ms: Date.now() - t0 };
  } catch (e) {
    const err = e as Error & { hint?: string; exitCode?: number };
    outcome = {
      ok: false,
      error: { name: err.constructor.name, message: err.message, ...(err.hint ? { hint: err.hint } : {}), ...(typeof err.exitCode === 'number' ? { exitCode: err.exitCode } : {}) },
      ms: Date.now() - t0,
    };
  }
  writeFileSync(outFile, JSON.stringify(outcome));
  return outcome.ok;
}
