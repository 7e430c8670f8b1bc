// The RDP probe: speak the start of RDP to one server (TCP connect, X.224 negotiation with its
// follow-ups, TLS and the certificate, the small-segment retry after silence, the TLS version scan)
// in at most 5 connections, each step with its own timeout, and return what the wire said. The
// verdict (lib/rdp-verdict.ts) is drawn from this result; probe-rdp.ts is its CLI, diagnose.ts adds
// a connect sample and the path-MTU check. Never throws for network reasons.
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { isResolved, resolveHost, type Unresolved } from './dns.ts';
import { connectSmallMss, findMssHelper, SMALL_MSS } from './mss-relay.ts';
import { tcpConnect, type ConnectOutcome } from './tcp.ts';
import { LEGACY_CIPHERS, TLS_VERSIONS, tlsHandshake, type TlsResult, type TlsVersion } from './tls-probe.ts';
import { formatHostPort } from './validate.ts';
import { exchangeConfirm, FAILURE_MEANINGS, PROTOCOL, protocolNames, type ConfirmRead } from './x224.ts';

// ---------------------------------------------------------------- types

export const DEFAULT_TIMEOUTS = { connectMs: 3000, x224Ms: 3000, tlsMs: 5000 } as const;
/** The most TCP connections one probe may open. */
export const MAX_CONNECTIONS = 5;
/** What a modern client asks for first. */
export const FIRST_REQUEST = PROTOCOL.SSL | PROTOCOL.HYBRID | PROTOCOL.HYBRID_EX;

export interface ProbeOptions {
  host: string;
  port?: number;
  /** Already resolved address of host (diagnose resolves once for the probe and its sample). */
  address?: string;
  /** A lookup of host that already failed (diagnose): reported as it is, not repeated. */
  unresolved?: Unresolved;
  connectTimeoutMs?: number;
  x224TimeoutMs?: number;
  tlsTimeoutMs?: number;
  /** Scan TLS 1.0-1.3 even when the first handshake succeeded. */
  tlsVersions?: boolean;
  /** Retry with a small segment size when the TLS flight does not arrive (default true). */
  mssRetry?: boolean;
  /** Segment size for that retry (default 536). */
  mss?: number;
  /** Silence after the ClientHello before the small-segment retry starts (default 1500 ms). */
  mssRetryAfterMs?: number;
  /** Use this helper for the small-segment retry (default: perl, else python3). */
  mssHelper?: 'perl' | 'python3';
  /** At most this many connections (1-5, default 5). */
  maxConnections?: number;
  /**
   * After the diagnosis, ask with the requests that say which clients connect (the `compatibility`
   * of lib/rdp-verdict.ts), in what is left of the budget (default true).
   */
  compatibility?: boolean;
  /** Progress, e.g. to start a path-MTU check as soon as the TLS flight looks lost. */
  onProgress?: (e: ProbeEvent) => void;
  /** Clock for certificate validity (tests). */
  now?: Date;
}

export type ProbeEvent =
  | { step: 'connected'; ms: number }
  /** The first connect's outcome, whatever it was (diagnose holds its sample back until then). */
  | { step: 'connect'; outcome: ProbeConnectOutcome; ms: number }
  | { step: 'tls-silence'; ms: number; address: string; port: number };

export type ProbeConnectOutcome = ConnectOutcome | 'reset' | 'unresolved';

export interface ProbeConnect {
  outcome: ProbeConnectOutcome;
  ms: number;
  error?: string;
}

export interface NegotiationStep {
  /** requestedProtocols we sent and its names. */
  requested: number;
  requestedNames: string[];
  /** Why this request was made (follow-ups). */
  why?: string;
  /** Connect of this request's own connection (follow-ups only; the first is `connect`). */
  connect?: ProbeConnect;
  outcome: 'response' | 'failure' | 'no-negotiation' | 'not-x224' | 'closed' | 'reset' | 'timeout' | 'not-connected';
  ms: number;
  bytes: number;
  selectedProtocol?: number;
  selectedNames?: string[];
  flags?: number;
  failureCode?: number;
  failureName?: string;
  failureMeaning?: string;
  /** not-x224: what was wrong. */
  reason?: string;
  /** First bytes of an answer that was not a Connection Confirm (text or hex). */
  preview?: string;
  /** Hex of bytes that came right after the confirm (xrdp: MCS disconnect before closing). */
  trailing?: string;
}

export interface MssRetry {
  mss: number;
  helper?: 'perl' | 'python3';
  /** Why it was not run. */
  skipped?: string;
  connect?: ProbeConnect;
  negotiation?: NegotiationStep;
  tls?: TlsResult;
  /** The server's TLS flight arrived over the small-segment connection. */
  arrived?: boolean;
  ms: number;
}

export interface TlsVersionResult {
  version: TlsVersion;
  /** true accepted, false refused, null could not be tested (connection or negotiation failed). */
  accepted: boolean | null;
  outcome: string;
  detail: string;
}

export interface TlsVersionScan {
  reason: 'requested' | 'first-handshake-failed';
  results: TlsVersionResult[];
  accepted: TlsVersion[];
  /** Versions not tested for lack of connections. */
  untested: TlsVersion[];
}

export interface ProbeResult {
  /** HOST:PORT as given (IPv6 in brackets). */
  endpoint: string;
  host: string;
  port: number;
  address: string | null;
  /** The name lookup (absent for an IP address); `code` and `error` when it failed. */
  dns?: { ms: number; code?: string; error?: string };
  connect: ProbeConnect;
  negotiation: NegotiationStep | null;
  followUps: NegotiationStep[];
  tls: TlsResult | null;
  mssRetry: MssRetry | null;
  tlsVersions: TlsVersionScan | null;
  /**
   * Requests made only to tell which clients connect (CredSSP only, Standard RDP Security only),
   * after the diagnosis and in what was left of the budget; `why` says what each asks.
   */
  clientChecks: NegotiationStep[];
  /** TCP connections opened (at most 5). */
  connections: number;
  ms: number;
  timeouts: { connectMs: number; x224Ms: number; tlsMs: number };
}

// ---------------------------------------------------------------- helpers

const round = (n: number) => Math.round(n * 100) / 100;
const isTlsSelection = (p: number) => (p & (PROTOCOL.SSL | PROTOCOL.HYBRID | PROTOCOL.RDSTLS | PROTOCOL.HYBRID_EX)) !== 0;

function negotiationFrom(requested: number, r: ConfirmRead): NegotiationStep {
  const base = { requested, requestedNames: protocolNames(requested), ms: r.ms, bytes: r.bytes };
  if (r.outcome === 'confirm') {
    const c = r.confirm;
    const trailing = r.trailing ? { trailing: r.trailing } : {};
    if (c.kind === 'response') return { ...base, outcome: 'response', selectedProtocol: c.selectedProtocol, selectedNames: c.protocols, flags: c.flags, ...trailing };
    if (c.kind === 'failure') {
      return { ...base, outcome: 'failure', failureCode: c.code, failureName: c.name, failureMeaning: FAILURE_MEANINGS[c.code] ?? 'unknown failure code', ...trailing };
    }
    return { ...base, outcome: 'no-negotiation', ...trailing };
  }
  if (r.outcome === 'not-x224') return { ...base, outcome: 'not-x224', reason: r.confirm.reason, preview: r.confirm.preview };
  return { ...base, outcome: r.outcome, ...(r.preview ? { preview: r.preview } : {}) };
}

/** Counts connections against the budget. */
class Budget {
  used = 0;
  constructor(readonly max: number) {}
  get left(): number {
    return this.max - this.used;
  }
  take(): boolean {
    if (this.used >= this.max) return false;
    this.used++;
    return true;
  }
}

interface Opened {
  connect: ProbeConnect;
  negotiation?: NegotiationStep;
  /** Open, paused, right after the confirm, when the server selected a TLS-based protocol. */
  stream?: Duplex;
}

// ---------------------------------------------------------------- the probe

/** Probe one RDP server. Never throws for network reasons; bounded by the step timeouts. */
export async function probeRdp(o: ProbeOptions): Promise<ProbeResult> {
  const t0 = performance.now();
  const port = o.port ?? 3389;
  const timeouts = {
    connectMs: o.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectMs,
    x224Ms: o.x224TimeoutMs ?? DEFAULT_TIMEOUTS.x224Ms,
    tlsMs: o.tlsTimeoutMs ?? DEFAULT_TIMEOUTS.tlsMs,
  };
  const budget = new Budget(Math.max(1, Math.min(MAX_CONNECTIONS, o.maxConnections ?? MAX_CONNECTIONS)));
  const servername = isIP(o.host) ? undefined : o.host.replace(/\.$/, '');
  const result: ProbeResult = {
    endpoint: formatHostPort({ host: o.host, port }),
    host: o.host,
    port,
    address: null,
    connect: { outcome: 'error', ms: 0 },
    negotiation: null,
    followUps: [],
    tls: null,
    mssRetry: null,
    tlsVersions: null,
    clientChecks: [],
    connections: 0,
    ms: 0,
    timeouts,
  };
  const done = () => {
    result.connections = budget.used;
    result.ms = round(performance.now() - t0);
    return result;
  };

  let address = o.address;
  if (!address) {
    const r = o.unresolved ?? (await resolveHost(o.host, timeouts.connectMs));
    if (!isIP(o.host)) result.dns = { ms: r.ms, ...(isResolved(r) ? {} : { code: r.code, error: r.error }) };
    if (!isResolved(r)) {
      result.connect = { outcome: 'unresolved', ms: r.ms, error: r.code };
      o.onProgress?.({ step: 'connect', outcome: 'unresolved', ms: r.ms });
      return done();
    }
    address = r.address;
  }
  result.address = address;
  const addr = address;

  /** Connect, send one Connection Request, read the confirm. Keeps the stream only for TLS. */
  const open = async (requested: number, onConnect?: (outcome: ProbeConnectOutcome, ms: number) => void): Promise<Opened> => {
    if (!budget.take()) return { connect: { outcome: 'error', ms: 0, error: `connection budget of ${budget.max} used up` } };
    const c = await tcpConnect(addr, port, timeouts.connectMs, true);
    onConnect?.(c.error === 'ECONNRESET' ? 'reset' : c.outcome, c.ms);
    if (c.outcome !== 'accepted' || !c.socket) {
      // An RST right after the SYN-ACK can beat libuv's connect callback: accepted, then reset.
      if (c.error === 'ECONNRESET') {
        return { connect: { outcome: 'reset', ms: c.ms, error: c.error }, negotiation: { requested, requestedNames: protocolNames(requested), outcome: 'reset', ms: 0, bytes: 0 } };
      }
      return { connect: { outcome: c.outcome, ms: c.ms, ...(c.error ? { error: c.error } : {}) } };
    }
    const socket = c.socket;
    const r = await exchangeConfirm(socket, requested, timeouts.x224Ms);
    const negotiation = negotiationFrom(requested, r);
    if (negotiation.outcome === 'response' && isTlsSelection(negotiation.selectedProtocol!)) {
      return { connect: { outcome: 'accepted', ms: c.ms }, negotiation, stream: socket };
    }
    socket.destroy();
    return { connect: { outcome: 'accepted', ms: c.ms }, negotiation };
  };

  const followUp = async (requested: number, why: string): Promise<Opened | null> => {
    if (budget.left < 1) return null;
    const f = await open(requested);
    result.followUps.push({ ...(f.negotiation ?? { requested, requestedNames: protocolNames(requested), outcome: 'not-connected', ms: 0, bytes: 0 }), why, connect: f.connect });
    return f;
  };

  // 1 + 2: connect and the first request.
  const first = await open(FIRST_REQUEST, (outcome, ms) => {
    if (outcome === 'accepted') o.onProgress?.({ step: 'connected', ms });
    o.onProgress?.({ step: 'connect', outcome, ms });
  });
  result.connect = first.connect;
  if (!first.negotiation) return done();
  result.negotiation = first.negotiation;
  let tlsStream = first.stream;
  const neg = first.negotiation;

  // Follow-ups that change the diagnosis.
  if (neg.outcome === 'failure' && neg.failureCode === 4) {
    // INCONSISTENT_FLAGS: a server that does not know HYBRID_EX; ask with fewer flags.
    for (const req of [PROTOCOL.SSL | PROTOCOL.HYBRID, PROTOCOL.SSL]) {
      const f = await followUp(req, 'the server called SSL|HYBRID|HYBRID_EX inconsistent; asking with fewer flags');
      if (!f || f.stream || f.negotiation?.failureCode !== 4) {
        tlsStream = f?.stream;
        break;
      }
    }
  } else if (neg.outcome === 'failure' && neg.failureCode === 2) {
    await followUp(PROTOCOL.RDP, 'SSL was refused; does the server accept Standard RDP Security?');
  } else if (neg.outcome === 'closed' || neg.outcome === 'reset') {
    await followUp(PROTOCOL.RDP, 'the server closed before answering; does it answer a Standard RDP Security request?');
  }
  if (!tlsStream) return finish();

  // 3 + 4: TLS on the same socket; silence starts the small-segment retry.
  const mss = o.mss ?? SMALL_MSS;
  const retryAfter = Math.min(o.mssRetryAfterMs ?? 1500, timeouts.tlsMs);
  let retry: Promise<MssRetry> | undefined;
  const abortMain = new AbortController();
  const startRetry = () => {
    if (retry) return retry;
    o.onProgress?.({ step: 'tls-silence', ms: round(performance.now() - t0), address: addr, port });
    retry = smallMssRetry(addr, port, mss, timeouts, budget, servername, o.now, o.mssRetry === false, o.mssHelper)
      .catch((e: unknown): MssRetry => ({ mss, skipped: `failed: ${(e as Error).message}`, ms: 0 }));
    // Once the flight arrived over small segments, the main handshake's silence has said enough.
    retry.then((r) => { if (r.arrived) abortMain.abort(); });
    return retry;
  };
  const tls = await tlsHandshake({
    stream: tlsStream,
    timeoutMs: timeouts.tlsMs,
    servername,
    now: o.now,
    silence: { afterMs: retryAfter, onSilence: startRetry },
    signal: abortMain.signal,
  });
  result.tls = tls;
  if (tls.outcome === 'silence' || tls.outcome === 'stalled') {
    result.mssRetry = await startRetry();
    return done();
  }
  if (retry) result.mssRetry = await retry; // slow flight that did arrive in the end: keep the record

  // 5: TLS versions.
  if (tls.outcome === 'ok' && o.tlsVersions) {
    const known = tls.version as TlsVersion | undefined;
    result.tlsVersions = await scanVersions(TLS_VERSIONS.filter((v) => v !== known), 'requested', known);
  } else if (tls.outcome !== 'ok' && (tls.outcome !== 'not-tls' || o.tlsVersions)) {
    // An alert, a close or a reset may be the server refusing our versions: find out which it takes.
    // (RDP bytes instead of TLS mean it aborted before reading our hello: no version would help,
    // so that case is scanned only on request.)
    result.tlsVersions = await scanVersions(['TLSv1.2', 'TLSv1.3', 'TLSv1', 'TLSv1.1'], o.tlsVersions ? 'requested' : 'first-handshake-failed');
  }
  return finish();

  /** The client checks, then the result. */
  async function finish(): Promise<ProbeResult> {
    if (o.compatibility !== false) await clientChecks();
    return done();
  }

  /**
   * The fewest requests that say which client profiles get in, one after the other, in what is
   * left of the budget. The first answer already tells most: a server that chose Standard RDP
   * Security, or refused SSL, needs no more. One that chose CredSSP is asked with Standard RDP
   * Security only (HYBRID_REQUIRED_BY_SERVER: NLA is required, so TLS-only clients fail too); one
   * that chose TLS is asked with CredSSP only (choosing Standard RDP Security or refusing also
   * answers for Standard RDP Security clients), and only if that leaves it open, with Standard
   * RDP Security only. A broken TLS handshake fails every TLS and CredSSP client alike.
   */
  async function clientChecks(): Promise<void> {
    const ask = async (requested: number, why: string): Promise<NegotiationStep | null> => {
      if (budget.left < 1) return null;
      const f = await open(requested);
      f.stream?.destroy();
      const step: NegotiationStep = { ...(f.negotiation ?? { requested, requestedNames: protocolNames(requested), outcome: 'not-connected', ms: 0, bytes: 0 }), why, connect: f.connect };
      result.clientChecks.push(step);
      return step;
    };
    const n = answered(result);
    if (!n) return;
    const tlsOk = result.tls?.outcome === 'ok';
    if (n.outcome === 'response') {
      const sel = n.selectedProtocol ?? 0;
      if (sel & (PROTOCOL.HYBRID | PROTOCOL.HYBRID_EX)) {
        if (tlsOk) await ask(PROTOCOL.RDP, 'the server chose CredSSP (NLA): does it take a client without CredSSP?');
      } else if (sel === PROTOCOL.SSL) {
        if (!tlsOk) {
          await ask(PROTOCOL.RDP, 'TLS fails: does a Standard RDP Security client get in?');
          return;
        }
        const h = await ask(PROTOCOL.HYBRID, 'the server chose TLS: does a CredSSP-only (NLA) client get in?');
        const unsettled = !h || (h.outcome === 'response' && h.selectedProtocol !== PROTOCOL.RDP) || (h.outcome === 'failure' && h.failureCode === 2);
        if (h && unsettled) await ask(PROTOCOL.RDP, 'does a Standard RDP Security client get in?');
      }
    } else if (n.outcome === 'failure' && n.failureCode === 3 && !result.followUps.some((f) => f.requested === PROTOCOL.RDP)) {
      await ask(PROTOCOL.RDP, 'the server has no certificate: does a Standard RDP Security client get in?');
    }
  }

  async function scanVersions(versions: TlsVersion[], reason: TlsVersionScan['reason'], known?: TlsVersion): Promise<TlsVersionScan> {
    const testable = versions.slice(0, Math.max(0, budget.left));
    const untested = versions.slice(testable.length);
    const request = neg.outcome === 'response' ? neg.requested : (result.followUps.find((f) => f.outcome === 'response')?.requested ?? FIRST_REQUEST);
    // Staggered a little: some servers (xrdp: listen backlog 2) drop SYNs that arrive all at once.
    const results = await Promise.all(testable.map(async (version, i): Promise<TlsVersionResult> => {
      await new Promise((r) => setTimeout(r, i * 20));
      const c = await open(request);
      if (!c.stream) {
        const what = c.negotiation ? `negotiation: ${c.negotiation.outcome}` : `connect: ${c.connect.outcome}`;
        return { version, accepted: null, outcome: 'untested', detail: `could not reach TLS (${what})` };
      }
      const legacy = version === 'TLSv1' || version === 'TLSv1.1' || version === 'TLSv1.2';
      const t = await tlsHandshake({ stream: c.stream, timeoutMs: timeouts.tlsMs, servername, minVersion: version, maxVersion: version, ...(legacy ? { ciphers: LEGACY_CIPHERS } : {}), now: o.now });
      const refused = t.outcome === 'alert' || t.outcome === 'closed' || t.outcome === 'reset' || t.outcome === 'protocol-error';
      return { version, accepted: t.outcome === 'ok' ? true : refused ? false : null, outcome: t.outcome, detail: t.outcome === 'ok' ? `accepted (${t.cipher})` : t.detail };
    }));
    if (known) results.push({ version: known, accepted: true, outcome: 'ok', detail: 'accepted (first handshake)' });
    results.sort((a, b) => TLS_VERSIONS.indexOf(a.version) - TLS_VERSIONS.indexOf(b.version));
    return { reason, results, accepted: results.filter((r) => r.accepted).map((r) => r.version), untested };
  }
}

/**
 * The answer that decided the negotiation: the first one, or after INCONSISTENT_FLAGS the
 * follow-up that was answered otherwise.
 */
export function answered(p: Pick<ProbeResult, 'negotiation' | 'followUps'>): NegotiationStep | null {
  const n = p.negotiation;
  if (n?.outcome === 'failure' && n.failureCode === 4) {
    return p.followUps.find((f) => f.outcome !== 'failure' || f.failureCode !== 4) ?? n;
  }
  return n;
}

/** The same request over a small-MSS connection; `skip` records why it was not run. */
async function smallMssRetry(
  address: string, port: number, mss: number, timeouts: ProbeResult['timeouts'], budget: Budget,
  servername: string | undefined, now: Date | undefined, skip: boolean, only?: 'perl' | 'python3',
): Promise<MssRetry> {
  const t0 = performance.now();
  const ms = () => round(performance.now() - t0);
  if (skip) return { mss, skipped: 'disabled (--no-mss-retry)', ms: 0 };
  const helper = findMssHelper(process.platform, only);
  if ('unavailable' in helper) return { mss, skipped: helper.unavailable, ms: 0 };
  if (!budget.take()) return { mss, skipped: `no connection left in the budget of ${budget.max}`, ms: 0 };
  const c = await connectSmallMss(address, port, mss, timeouts.connectMs, helper);
  if (c.outcome === 'unavailable') return { mss, skipped: c.error, ms: 0 };
  if (c.outcome !== 'accepted') return { mss, helper: c.helper, connect: { outcome: c.outcome, ms: c.ms, error: c.error }, ms: ms() };
  const connect: ProbeConnect = { outcome: 'accepted', ms: c.ms };
  const r = await exchangeConfirm(c.stream, FIRST_REQUEST, timeouts.x224Ms);
  const negotiation = negotiationFrom(FIRST_REQUEST, r);
  if (negotiation.outcome !== 'response' || !isTlsSelection(negotiation.selectedProtocol!)) {
    c.stream.destroy();
    return { mss, helper: c.helper, connect, negotiation, ms: ms() };
  }
  const tls = await tlsHandshake({ stream: c.stream, timeoutMs: timeouts.tlsMs, servername, now });
  return { mss, helper: c.helper, connect, negotiation, tls, arrived: tls.bytesReceived > 0, ms: ms() };
}
