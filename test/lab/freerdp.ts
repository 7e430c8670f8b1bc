// FreeRDP 2.11.7 (Debian: freerdp2-shadow-x11, freerdp2-x11) in the lab: its server
// `freerdp-shadow-cli` as a second real RDP server (with real NLA: NTLM against a SAM file) and
// its client `xfreerdp +auth-only` as the judge of diagnose's `compatibility`. Both are X clients:
// each namespace that runs one gets its own Xvfb (an X server's abstract socket lives in the
// network namespace it was started in).
//
// FINDINGS (measured here, FreeRDP 2.11.7, xrdp 0.9.21.1):
// - freerdp-shadow-cli reads shadow.crt/shadow.key from $XDG_CONFIG_HOME/freerdp/shadow/ (it
//   generates a pair named for the host, CN=vm, when they are missing): the lab's certificate is
//   put there first, so that the `validating` client can trust exactly it.
// - /sec:nla with /sam-file: lines `user:domain::NTHASH:::`; the NT hash is MD4 of the UTF-16LE
//   password (Node's crypto has no MD4 under OpenSSL 3: md4() below).
// - xfreerdp +auth-only connects, runs the security layer (and CredSSP), exits 0 when that
//   worked; a failure is an `ERRCONNECT_*` line and a non-zero exit. Without /cert:ignore and
//   without a terminal it cannot ask about a certificate it does not trust and gives up.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecResult, HostName, Spawned, Topology } from './netns.ts';
import { bin } from './prereq.ts';
import type { CertPair } from './xrdp.ts';

// ---------------------------------------------------------------- NT hash

/** MD4 (RFC 1320). Only for the lab's SAM file: Node's crypto lacks it under OpenSSL 3. */
export function md4(data: Buffer): Buffer {
  const len = data.length;
  const padded = Buffer.alloc((((len + 8) >> 6) + 1) << 6);
  data.copy(padded);
  padded[len] = 0x80;
  padded.writeUInt32LE((len * 8) >>> 0, padded.length - 8);
  padded.writeUInt32LE(Math.floor(len / 0x20000000), padded.length - 4);
  let [a, b, c, d] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  const rotl = (x: number, s: number) => (x << s) | (x >>> (32 - s));
  const F = (x: number, y: number, z: number) => (x & y) | (~x & z);
  const G = (x: number, y: number, z: number) => (x & y) | (x & z) | (y & z);
  const H = (x: number, y: number, z: number) => x ^ y ^ z;
  for (let off = 0; off < padded.length; off += 64) {
    const X = Array.from({ length: 16 }, (_, i) => padded.readUInt32LE(off + i * 4));
    const [aa, bb, cc, dd] = [a, b, c, d];
    for (const i of [0, 4, 8, 12]) {
      a = rotl((a + F(b, c, d) + X[i]!) | 0, 3);
      d = rotl((d + F(a, b, c) + X[i + 1]!) | 0, 7);
      c = rotl((c + F(d, a, b) + X[i + 2]!) | 0, 11);
      b = rotl((b + F(c, d, a) + X[i + 3]!) | 0, 19);
    }
    for (const i of [0, 1, 2, 3]) {
      a = rotl((a + G(b, c, d) + X[i]! + 0x5a827999) | 0, 3);
      d = rotl((d + G(a, b, c) + X[i + 4]! + 0x5a827999) | 0, 5);
      c = rotl((c + G(d, a, b) + X[i + 8]! + 0x5a827999) | 0, 9);
      b = rotl((b + G(c, d, a) + X[i + 12]! + 0x5a827999) | 0, 13);
    }
    for (const i of [0, 2, 1, 3]) {
      a = rotl((a + H(b, c, d) + X[i]! + 0x6ed9eba1) | 0, 3);
      d = rotl((d + H(a, b, c) + X[i + 8]! + 0x6ed9eba1) | 0, 9);
      c = rotl((c + H(d, a, b) + X[i + 4]! + 0x6ed9eba1) | 0, 11);
      b = rotl((b + H(c, d, a) + X[i + 12]! + 0x6ed9eba1) | 0, 15);
    }
    a = (a + aa) | 0;
    b = (b + bb) | 0;
    c = (c + cc) | 0;
    d = (d + dd) | 0;
  }
  const out = Buffer.alloc(16);
  [a, b, c, d].forEach((v, i) => out.writeInt32LE(v, i * 4));
  return out;
}

/** The NT hash of a password: MD4 of its UTF-16LE bytes, hex. */
export const ntHash = (password: string): string => md4(Buffer.from(password, 'utf16le')).toString('hex');

/** One SAM line as FreeRDP's NTLM (winpr) reads it. */
export const samLine = (user: string, domain: string, password: string): string => `${user}:${domain}::${ntHash(password)}:::`;

// ---------------------------------------------------------------- Xvfb

export interface Xvfb {
  display: string;
  proc: Spawned;
  stop(): Promise<void>;
}

/**
 * Xvfb inside a namespace. The display number is picked at random and retried when taken (the
 * lock files in /tmp are shared by every namespace and by other test processes).
 */
export async function startXvfb(topo: Topology, host: HostName): Promise<Xvfb> {
  let last = '';
  for (let attempt = 0; attempt < 8; attempt++) {
    const n = 200 + Math.floor(Math.random() * 30_000);
    const proc = topo.spawn(host, [bin('Xvfb'), `:${n}`, '-nolisten', 'tcp', '-screen', '0', '800x600x24', '-nocursor']);
    // Xvfb prints nothing when it is ready; a connecting client is the test. xdpyinfo is not
    // installed, so wait for the lock-holding socket file and for the process to stay up.
    const up = await waitForX(topo, host, n, proc);
    if (up) return { display: `:${n}`, proc, stop: () => proc.kill() };
    last = proc.output();
    await proc.kill();
  }
  throw new Error(`Xvfb did not start in ${host}: ${last}`);
}

async function waitForX(topo: Topology, host: HostName, n: number, proc: Spawned): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < 5000) {
    if (!proc.running) return false;
    // The abstract socket @/tmp/.X11-unix/XN of this namespace is listed by ss.
    const r = await topo.exec(host, [bin('ss'), '-xlH'], { timeoutMs: 3000 });
    if (r.stdout.includes(`@/tmp/.X11-unix/X${n} `)) return true;
    await new Promise((res) => setTimeout(res, 50));
  }
  return false;
}

// ---------------------------------------------------------------- the server

export type ShadowSec = 'all' | 'tls' | 'rdp' | 'nla';

export interface ShadowOptions {
  port: number;
  /** 'all': FreeRDP's default (every security layer enabled); else /sec:X. */
  sec: ShadowSec;
  /** Put into its configuration folder as shadow.crt/shadow.key. */
  cert: CertPair;
  /** SAM file for NTLM (CredSSP). */
  samFile: string;
  display: string;
  host?: HostName;
}

export interface Shadow {
  addr: string;
  port: number;
  sec: ShadowSec;
  proc: Spawned;
  stop(): Promise<void>;
}

/** freerdp-shadow-cli in a namespace, bound to that host's address, waiting until it listens. */
export async function startShadow(topo: Topology, o: ShadowOptions): Promise<Shadow> {
  const host = o.host ?? 'server';
  const addr = topo.host(host).addr;
  const home = join(topo.tmpDir, `shadow-${o.port}`);
  const conf = join(home, '.config', 'freerdp', 'shadow');
  mkdirSync(conf, { recursive: true });
  copyFileSync(o.cert.cert, join(conf, 'shadow.crt'));
  copyFileSync(o.cert.key, join(conf, 'shadow.key'));
  const args = [bin('freerdp-shadow-cli'), `/port:${o.port}`, `/bind-address:${addr}`, `/sam-file:${o.samFile}`, ...(o.sec === 'all' ? [] : [`/sec:${o.sec}`])];
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), DISPLAY: o.display, WLOG_LEVEL: 'INFO' };
  // An Xvfb that has just started listening may still refuse a client for a moment: try again then.
  for (let attempt = 1; ; attempt++) {
    const proc = topo.spawn(host, args, { env });
    const died = proc.exited.then(() => { throw new Error('exited before listening'); });
    died.catch(() => { /* reported through the race below */ });
    try {
      await Promise.race([topo.waitListening(host, o.port, addr, 8000), died]);
      return { addr, port: o.port, sec: o.sec, proc, stop: () => proc.kill() };
    } catch (err) {
      await proc.kill();
      if (attempt < 4 && /failed to open display/.test(proc.output())) {
        await new Promise((r) => setTimeout(r, 250 * attempt));
        continue;
      }
      throw new Error(`freerdp-shadow-cli ${args.slice(1).join(' ')}: ${(err as Error).message}\n${proc.output()}`);
    }
  }
}

// ---------------------------------------------------------------- the client

/** The client profiles of diagnose's `compatibility`, as xfreerdp options. */
export const CLIENT_PROFILES = ['default', 'nla', 'tls', 'rdp', 'validating'] as const;
export type ClientProfile = (typeof CLIENT_PROFILES)[number];

export interface ClientRun {
  profile: ClientProfile;
  connected: boolean;
  /** The ERRCONNECT_* name xfreerdp logged when it failed. */
  error: string | null;
  exitCode: number | null;
  timedOut: boolean;
  ms: number;
  /** Last lines of its output (for the report). */
  tail: string;
}

export interface Credentials {
  user: string;
  domain: string;
  password: string;
}

/**
 * A client folder whose certificate store trusts exactly `trusted` (for `validating`): FreeRDP 2
 * verifies against OpenSSL's default roots plus $XDG_CONFIG_HOME/freerdp/certs (hashed names).
 */
export function clientHome(topo: Topology, name: string, trusted: string[] = []): string {
  const home = join(topo.tmpDir, `xfreerdp-${name}`);
  const certs = join(home, '.config', 'freerdp', 'certs');
  mkdirSync(certs, { recursive: true });
  for (const file of trusted) {
    const hash = execFileSync(bin('openssl'), ['x509', '-noout', '-subject_hash', '-in', file], { encoding: 'utf8', timeout: 5000 }).trim();
    copyFileSync(file, join(certs, `${hash}.0`));
  }
  writeFileSync(join(home, '.config', 'freerdp', 'known_hosts2'), '');
  return home;
}

export function profileArgs(profile: ClientProfile, certName?: string): string[] {
  switch (profile) {
    case 'default': return ['/cert:ignore'];
    case 'nla': return ['/sec:nla', '/cert:ignore'];
    case 'tls': return ['/sec:tls', '/cert:ignore'];
    case 'rdp': return ['/sec:rdp', '/cert:ignore'];
    case 'validating': return certName ? [`/cert:name:${certName}`] : [];
  }
}

/** xfreerdp +auth-only once, bounded by timeoutMs (it has no timeout of its own on a silent path). */
export async function runClient(topo: Topology, o: {
  profile: ClientProfile; addr: string; port: number; display: string; home: string; creds: Credentials; certName?: string; timeoutMs?: number; extra?: string[];
}): Promise<ClientRun> {
  const argv = [bin('xfreerdp'), `/v:${o.addr}:${o.port}`, `/u:${o.creds.user}`, `/d:${o.creds.domain}`, `/p:${o.creds.password}`, '+auth-only', ...profileArgs(o.profile, o.certName), ...(o.extra ?? [])];
  const r: ExecResult = await topo.exec('client', argv, {
    timeoutMs: o.timeoutMs ?? 15_000,
    env: { ...process.env, HOME: o.home, XDG_CONFIG_HOME: join(o.home, '.config'), DISPLAY: o.display, WLOG_LEVEL: 'INFO' },
    input: '',
  });
  const out = `${r.stdout}\n${r.stderr}`;
  const error = /ERRCONNECT_[A-Z_]+/.exec(out)?.[0] ?? null;
  const connected = r.exitCode === 0 && !r.timedOut;
  return {
    profile: o.profile,
    connected,
    // It logs ERRCONNECT_CONNECT_CANCELLED on its way out after a successful +auth-only too.
    error: connected ? null : error,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    ms: r.ms,
    tail: out.trim().split('\n').slice(-14).join('\n'),
  };
}
