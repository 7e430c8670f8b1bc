// The system `ping`, on Linux (iputils), Windows and macOS: building its argv (never a shell string)
// and reading what it printed. Used for ICMP round-trip samples (test-vpn-latency) and for
// don't-fragment probes (lower-mtu path-MTU discovery).
//
// Every outcome is one of: a reply (with its RTT), a DEFINITE "too big" (the local stack refused the
// size, or a router sent ICMP "fragmentation needed" — often with the MTU it can carry), silence
// (nothing came back: loss, a filter, or a PMTU black hole — indistinguishable, so callers retry), an
// ICMP error from a router (unreachable), or ping itself failing (not installed, no permission,
// unknown host). Output is parsed in the English/C locale; on Linux we force LC_ALL=C. Windows ping
// prints in the UI language and cannot be switched, so non-English Windows output is read by its
// shape where possible (a "TTL=" reply line) and otherwise reported as silence.
import { spawn } from 'node:child_process';
import { EnvError } from './errors.ts';

export type PingPlatform = 'linux' | 'win32' | 'darwin';

/** Our three families of ping. Anything else Unix-like is assumed to have iputils-style options. */
export function pingPlatform(p: NodeJS.Platform = process.platform): PingPlatform {
  return p === 'win32' ? 'win32' : p === 'darwin' ? 'darwin' : 'linux';
}

/** IP + ICMP header bytes: an MTU of N carries a ping payload of N - overhead. */
export function icmpOverhead(family: 4 | 6): number {
  return family === 6 ? 48 : 28;
}

export interface PingArgs {
  /** A literal IPv4/IPv6 address (resolve names first, so ping and route lookups agree). */
  address: string;
  family: 4 | 6;
  /** ICMP payload bytes; default: ping's own default (56, Windows 32). */
  payload?: number;
  /** Set don't-fragment (IPv4); for IPv6 routers never fragment, so only the local stack matters. */
  df?: boolean;
  timeoutMs: number;
}

/**
 * argv for ONE echo request. The timeout we pass is only ping's own wait; runPing also kills it
 * after timeoutMs, because iputils before 20210202 and busybox accept whole seconds only.
 */
export function pingArgv(platform: PingPlatform, a: PingArgs): string[] {
  const secs = String(Math.max(1, Math.ceil(a.timeoutMs / 1000)));
  const size = a.payload !== undefined ? ['-s', String(a.payload)] : [];
  switch (platform) {
    case 'linux':
      return ['ping', '-n', a.family === 6 ? '-6' : '-4', '-c', '1', '-W', secs, ...(a.df ? ['-M', 'do'] : []), ...size, a.address];
    case 'win32':
      // -f (don't fragment) is IPv4-only; -l is the payload size; -w waits in milliseconds.
      return ['ping', '-n', '1', '-w', String(Math.max(1, Math.round(a.timeoutMs))), a.family === 6 ? '-6' : '-4',
        ...(a.df && a.family === 4 ? ['-f'] : []), ...(a.payload !== undefined ? ['-l', String(a.payload)] : []), a.address];
    case 'darwin':
      // macOS: -W waits in milliseconds, -D sets don't-fragment; IPv6 is ping6, whose -D disables
      // fragmentation (and which has no -W: runPing's own timer ends it).
      if (a.family === 6) return ['ping6', '-n', '-c', '1', ...(a.df ? ['-D'] : []), ...size, a.address];
      return ['ping', '-n', '-c', '1', '-W', String(Math.max(1, Math.round(a.timeoutMs))), ...(a.df ? ['-D'] : []), ...size, a.address];
  }
}

export type PingOutcome =
  | { kind: 'reply'; rttMs: number }
  /** Definite: refused locally (local = true) or ICMP fragmentation needed from a router. */
  | { kind: 'too-big'; local: boolean; mtu?: number }
  /** Nothing came back in time. */
  | { kind: 'silent' }
  /** A router or the local stack said the destination cannot be reached. */
  | { kind: 'unreachable'; detail: string }
  /** ping could not do its job (unknown host, permission, bad option). */
  | { kind: 'error'; detail: string };

const firstLine = (re: RegExp, text: string) => text.split(/\r?\n/).find((l) => re.test(l))?.trim() ?? '';

/**
 * Read one single-echo run of ping. `text` is stdout and stderr together. Never throws.
 * Order matters: a "too big" is looked for before replies, because macOS prints ICMP errors as
 * "36 bytes from ...: frag needed ..." (which also contains "bytes from").
 */
export function parsePing(platform: PingPlatform, text: string): PingOutcome {
  const t = text.replace(/\r/g, '');
  // --- definite "too big"
  // Linux: "ping: local error: message too long, mtu=1400" (the kernel knows a smaller PMTU or the
  // interface MTU is smaller); "From 10.0.0.1 icmp_seq=1 Frag needed and DF set (mtu = 1400)".
  // macOS: "ping: sendto: Message too long"; "36 bytes from 10.0.0.1: frag needed and DF set (MTU 1400)".
  // Windows: "Packet needs to be fragmented but DF set." (local refusal and router ICMP alike).
  let m = /local error: message too long,?\s*mtu\s*=\s*(\d+)/i.exec(t);
  if (m) return { kind: 'too-big', local: true, mtu: Number(m[1]) };
  m = /frag(?:mentation)? needed and DF set\s*\((?:mtu\s*=?\s*)?(\d+)\)/i.exec(t) ?? /frag(?:mentation)? needed and DF set\s*\(MTU\s+(\d+)\)/i.exec(t);
  if (m) return { kind: 'too-big', local: false, mtu: Number(m[1]) };
  if (/frag(?:mentation)? needed and DF set/i.test(t)) return { kind: 'too-big', local: false };
  if (/(sendto|sendmsg|local error):\s*message too long/i.test(t)) return { kind: 'too-big', local: true };
  if (/Packet needs to be fragmented but DF set/i.test(t)) return { kind: 'too-big', local: false };
  if (/packet too big/i.test(t)) {
    const pm = /packet too big[^\n]*?mtu\s*=?\s*(\d+)/i.exec(t);
    return pm ? { kind: 'too-big', local: false, mtu: Number(pm[1]) } : { kind: 'too-big', local: false };
  }

  // --- a reply: "64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms" (Linux, macOS) or
  // "Reply from 10.0.0.5: bytes=1472 time=12ms TTL=117" / "time<1ms" (Windows; in other UI languages
  // the words change but "time=12ms TTL=117" keeps its shape, e.g. German "Zeit=12ms TTL=117").
  if (platform === 'win32') {
    m = /[=<](\d+(?:[.,]\d+)?)\s*ms\s+TTL=\d+/i.exec(t);
    if (m) {
      // Windows has 1 ms resolution; "time<1ms" means somewhere in [0, 1): report the midpoint.
      const lessThan = /<\s*\d/.test(m[0]);
      return { kind: 'reply', rttMs: lessThan ? Number(m[1]) / 2 : Number(m[1]!.replace(',', '.')) };
    }
  } else {
    m = /bytes from [^\n]*?time[=<]\s*(\d+(?:\.\d+)?)\s*ms/i.exec(t);
    if (m) return { kind: 'reply', rttMs: Number(m[1]) };
  }

  // --- ICMP errors from routers and local routing failures
  const unreach = firstLine(/unreachable|TTL expired|time to live exceeded|General failure|prohibited/i, t);
  if (unreach) {
    if (/General failure/i.test(unreach)) return { kind: 'error', detail: unreach };
    return { kind: 'unreachable', detail: unreach };
  }

  // --- ping itself failed
  const err = firstLine(
    /unknown host|cannot resolve|could not find host|Name or service not known|Temporary failure in name resolution|not permitted|permission denied|usage:|invalid|bad (?:linger|timing|wait)/i,
    t,
  );
  if (err) return { kind: 'error', detail: err };

  // "Request timed out." (Windows), "Request timeout for icmp_seq 0" (macOS), or just
  // "1 packets transmitted, 0 received" (Linux): silence.
  return { kind: 'silent' };
}

export interface RunPingOptions extends PingArgs {
  platform?: PingPlatform;
  signal?: AbortSignal;
}

export interface PingRun {
  outcome: PingOutcome;
  argv: string[];
  /** What ping printed (stdout + stderr), for evidence. */
  output: string;
}

/**
 * Run one echo through the system ping. A missing ping is an EnvError (exit 2) with the install
 * step; everything else is an outcome. The process is killed when timeoutMs (plus a little for
 * process start-up) has passed, or when `signal` aborts.
 */
export function runPing(o: RunPingOptions): Promise<PingRun> {
  const platform = o.platform ?? pingPlatform();
  const argv = pingArgv(platform, o);
  return new Promise((resolve, reject) => {
    const env = platform === 'win32' ? process.env : { ...process.env, LC_ALL: 'C', LANG: 'C' };
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env, windowsHide: true });
    let out = '';
    let killed = false;
    const kill = () => {
      killed = true;
      child.kill('SIGKILL');
    };
    const onData = (d: string) => {
      out += d;
      // A local refusal is final, but ping then waits out its whole deadline for nothing.
      if (/local error|message too long/i.test(out) && !killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    // Slack for process start-up: ping starts its own clock only once it has sent.
    const timer = setTimeout(kill, o.timeoutMs + 150);
    const onAbort = () => kill();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (e.code === 'ENOENT') {
        reject(new EnvError(`the system '${argv[0]}' program was not found`,
          platform === 'linux' ? 'install it: `apt-get install iputils-ping` (Debian/Ubuntu) or `dnf install iputils`' : undefined));
      } else {
        resolve({ outcome: { kind: 'error', detail: e.message }, argv, output: out });
      }
    });
    child.on('close', () => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      const parsed = parsePing(platform, out);
      // Killed by our timer: whatever it printed before, no reply means silence.
      const outcome: PingOutcome = killed && parsed.kind !== 'reply' && parsed.kind !== 'too-big' ? { kind: 'silent' } : parsed;
      resolve({ outcome, argv, output: out });
    });
  });
}
