// The path-MTU search: the largest packet that crosses the path to a host with don't-fragment set,
// found by a binary search that tolerates loss (searchPathMtu, pure) over the system ping
// (probePathMtu). lower-mtu --probe prints it and --auto acts on it; diagnose runs it when the
// probe points at the network.
import { StepError } from './errors.ts';
import { isResolved, resolveHost } from './dns.ts';
import { icmpOverhead, pingPlatform, runPing, type PingPlatform } from './ping.ts';
import { describeRoute } from './route.ts';
import { validateHost, validateInt, validateMtu } from './validate.ts';

/** An IP packet is at most 65535 bytes, whatever larger MTU an interface reports (Linux lo: 65536). */
export const MAX_IP_PACKET = 65535;

// ------------------------------------------------------------------ path-MTU search (pure)

/** What one don't-fragment probe of a given MTU told us. */
export type ProbeAnswer =
  | { kind: 'reply'; rttMs?: number }
  /** Definite: refused locally or ICMP "fragmentation needed" (mtu = what the hop can carry). */
  | { kind: 'too-big'; mtu?: number }
  /** Nothing came back: loss, or too big on a black-hole path. */
  | { kind: 'silent' }
  | { kind: 'error'; detail: string };

export interface ProbeStep {
  mtu: number;
  answer: ProbeAnswer['kind'];
  /** MTU reported by ICMP fragmentation-needed or the local stack. */
  hint?: number;
}

export interface SearchOptions {
  /** Smallest MTU considered (576 for IPv4, 1280 for IPv6). */
  floor: number;
  /** Largest: the interface MTU. */
  ceiling: number;
  /** Extra attempts before a silent size is accepted as too big. */
  retries: number;
}

export interface SearchResult {
  pathMtu: number | null;
  probes: number;
  /**
   * true: sizes above pathMtu vanish silently (no ICMP fragmentation-needed): a PMTU black hole.
   * false: the path carries the interface MTU, or routers report their MTU so TCP adapts.
   * null: unknown (no answer at all).
   */
  blackhole: boolean | null;
  steps: ProbeStep[];
  error?: string;
}

/**
 * Binary search for the largest MTU that gets an echo reply with don't-fragment set.
 *
 * A reply is proof. Silence is not (one lost packet looks exactly like "too big" on a black-hole
 * path), so silent sizes are kept as unconfirmed; the search bisects between the largest size that
 * passed and the smallest that failed. Only the one failure that decides the answer (pathMtu + 1)
 * is re-sent `retries` more times: every other failure lies above it and is implied by it, and an
 * unconfirmed failure below the truth is found out because its re-send then gets a reply, after
 * which the search resumes above it. So a lossless black-hole path costs 1 + ceil(log2(range)) +
 * retries probes (12 for 576..1500 with one retry), and an ICMP answer carrying the hop's MTU cuts
 * it to two.
 */
export async function searchPathMtu(probe: (mtu: number) => Promise<ProbeAnswer>, o: SearchOptions): Promise<SearchResult> {
  const steps: ProbeStep[] = [];
  let lo = o.floor - 1; // largest size that got a reply (floor - 1: none yet)
  let hard = o.ceiling + 1; // smallest size known to be too big
  let hardBySilence = false; // `hard` was established by confirmed silence, not by an ICMP/local error
  const soft = new Set<number>(); // silent once, not confirmed
  let hint: number | null = null;
  let silentBeforeReply = 0;

  const ask = async (mtu: number): Promise<ProbeAnswer> => {
    const a = await probe(mtu);
    steps.push({ mtu, answer: a.kind, ...(a.kind === 'too-big' && a.mtu !== undefined ? { hint: a.mtu } : {}) });
    return a;
  };
  const learn = (mtu: number, a: ProbeAnswer): void => {
    if (a.kind === 'reply') {
      lo = Math.max(lo, mtu);
      for (const s of soft) if (s <= mtu) soft.delete(s);
    } else if (a.kind === 'too-big') {
      soft.delete(mtu);
      if (mtu < hard) {
        hard = mtu;
        hardBySilence = false;
      }
      // The hop says what it carries: everything above it fails there. Sanity-check the number
      // (old routers send 0; a hint must be below the size that failed and above what passed).
      if (a.mtu !== undefined && a.mtu >= o.floor && a.mtu < mtu) {
        if (a.mtu + 1 < hard) {
          hard = a.mtu + 1;
          hardBySilence = false;
        }
        if (a.mtu > lo) hint = a.mtu;
      }
    } else if (a.kind === 'silent') {
      soft.add(mtu);
      if (lo < o.floor) silentBeforeReply++;
    }
  };
  const done = (error?: string): SearchResult => {
    const pathMtu = lo >= o.floor ? lo : null;
    return {
      pathMtu: error ? null : pathMtu,
      probes: steps.length,
      blackhole: error || pathMtu === null ? null : pathMtu < o.ceiling && hardBySilence,
      steps,
      ...(error ? { error } : {}),
    };
  };

  const first = await ask(o.ceiling);
  if (first.kind === 'error') return done(first.detail);
  learn(o.ceiling, first);

  for (let guard = 0; guard < 200; guard++) {
    const softAbove = [...soft].filter((s) => s > lo);
    const upper = Math.min(hard, ...softAbove);
    if (upper <= lo + 1) {
      if (upper === hard) return done();
      // The deciding failure is unconfirmed: send it again (up to `retries` more times).
      let a: ProbeAnswer = { kind: 'silent' };
      for (let i = 0; i < o.retries && a.kind === 'silent'; i++) a = await ask(upper);
      if (a.kind === 'error') return done(a.detail);
      if (a.kind === 'silent') {
        soft.delete(upper);
        hard = upper;
        hardBySilence = true;
      } else {
        learn(upper, a);
      }
      continue;
    }
    let next: number;
    if (hint !== null && hint > lo && hint < upper) {
      next = hint;
      hint = null;
    } else if (lo < o.floor && silentBeforeReply >= 2 && o.floor < upper && !soft.has(o.floor)) {
      // Nothing has answered yet: check that the host answers small pings at all before bisecting
      // further (ICMP echo is often blocked, e.g. by Windows Firewall's defaults).
      next = o.floor;
    } else {
      next = Math.floor((lo + upper) / 2);
    }
    const a = await ask(next);
    if (a.kind === 'error') return done(a.detail);
    learn(next, a);
  }
  return done('the search did not converge');
}

// ------------------------------------------------------------------ probePathMtu (system ping)

export interface PmtuOptions {
  /** Host name or address (a ":port" suffix is accepted and ignored). */
  host: string;
  /** Smallest MTU to consider (default 576, IPv6 1280). */
  floor?: number;
  /** Per-probe timeout in ms (default 1000). */
  timeoutMs?: number;
  /** Extra attempts before a silent size counts as too big (default 1). */
  retries?: number;
  /** Largest MTU to try (default: the outgoing interface's MTU, or 1500 if unknown). */
  ceiling?: number;
  /** Called after each probe (progress). */
  onProbe?: (step: ProbeStep) => void;
}

export interface PmtuResult {
  /** The host probed, as given (`target` is the channel elsewhere; this is never one). */
  host: string;
  /** The address probed. */
  address: string;
  family: 4 | 6;
  pathMtu: number | null;
  probes: number;
  interface: string | null;
  interfaceMtu: number | null;
  blackhole: boolean | null;
  floor: number;
  ceiling: number;
  elapsedMs: number;
  steps: ProbeStep[];
  error?: string;
}

/** A validated host as one address, through the one DNS helper (literal IPs pass through). */
async function resolveOne(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const r = await resolveHost(host);
  if (!isResolved(r)) throw new StepError(`cannot resolve ${host}: ${r.code}`, 'check the name, or give the IP address');
  return { address: r.address, family: r.family };
}

/** Discover the path MTU to a host with don't-fragment pings through the system ping. */
export async function probePathMtu(opts: PmtuOptions): Promise<PmtuResult> {
  const t0 = performance.now();
  const h = validateHost(opts.host);
  const { address, family } = await resolveOne(h.host);
  const floor = opts.floor !== undefined ? validateMtu(opts.floor, family) : family === 6 ? 1280 : 576;
  const timeoutMs = validateInt(opts.timeoutMs ?? 1000, 'probe timeout (ms)', 50, 60_000);
  const retries = validateInt(opts.retries ?? 1, 'retries', 0, 10);
  const route = await describeRoute(address, family);
  // The interface's MTU bounds the search, and so does the largest packet IP can carry: loopback
  // reports 65536, and no ping of that size exists.
  const ceiling = opts.ceiling !== undefined ? validateMtu(opts.ceiling, family) : Math.min(route.mtu ?? 1500, MAX_IP_PACKET);
  const base = { host: opts.host, address, family, interface: route.interface, interfaceMtu: route.mtu, floor, ceiling };
  if (floor > ceiling) {
    return { ...base, pathMtu: null, probes: 0, blackhole: null, elapsedMs: 0, steps: [], error: `the floor ${floor} is above the interface MTU ${ceiling}` };
  }
  const platform: PingPlatform = pingPlatform();
  const overhead = icmpOverhead(family);
  const search = await searchPathMtu(
    async (mtu) => {
      const { outcome } = await runPing({ platform, address, family, df: true, payload: mtu - overhead, timeoutMs });
      let a: ProbeAnswer;
      switch (outcome.kind) {
        case 'reply':
          a = { kind: 'reply', rttMs: outcome.rttMs };
          break;
        case 'too-big':
          a = outcome.mtu !== undefined ? { kind: 'too-big', mtu: outcome.mtu } : { kind: 'too-big' };
          break;
        case 'silent':
          a = { kind: 'silent' };
          break;
        default:
          a = { kind: 'error', detail: outcome.detail };
      }
      opts.onProbe?.({ mtu, answer: a.kind, ...(a.kind === 'too-big' && a.mtu !== undefined ? { hint: a.mtu } : {}) });
      return a;
    },
    { floor, ceiling, retries },
  );
  let error = search.error;
  if (!error && search.pathMtu === null) {
    error = `no echo reply from ${address} even at ${floor} bytes: ICMP echo is blocked on the way or at the host (Windows Firewall blocks it by default), or the host is down`;
  }
  return {
    ...base,
    pathMtu: search.pathMtu,
    probes: search.probes,
    blackhole: search.blackhole,
    elapsedMs: Math.round(performance.now() - t0),
    steps: search.steps,
    ...(error ? { error } : {}),
  };
}
