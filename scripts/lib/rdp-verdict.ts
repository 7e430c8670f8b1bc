// From what the wire showed to one cause, a confidence, evidence lines and the command that fixes
// it. Shared by probe-rdp (probe only) and diagnose (probe + connect sample + path-MTU check). Pure:
// no I/O except printVerdict. The causes and their recipes are the table in lib/causes.ts.
import { answered, MAX_CONNECTIONS, type NegotiationStep, type ProbeResult } from './probe.ts';
import { recipeFor, type Cause } from './causes.ts';
import { chalk } from './output.ts';
import type { TlsResult } from './tls-probe.ts';
import { findProgram } from './which.ts';
import { PROTOCOL, protocolLabel } from './x224.ts';

export interface SampleConnect {
  i: number;
  /** accepted / refused / reset are answers; timeout = no answer before the cut-off. */
  outcome: 'accepted' | 'refused' | 'reset' | 'timeout' | 'unreachable' | 'error';
  ms: number;
  /** Answered only after a SYN retransmission (>= 1 s), or not at all: a lost SYN or SYN-ACK. */
  lost: boolean;
  /** When this process's event loop was blocked meanwhile: the raw time, and the lag taken out of `ms`. */
  measuredMs?: number;
  lagMs?: number;
}

export interface ConnectSample {
  /** Connects made (the probe's own connect is sample 0). */
  attempts: number;
  /** Largest event-loop lag taken out of a connect time (this machine was busy). */
  maxLagMs?: number;
  answered: number;
  accepted: number;
  refused: number;
  lost: number;
  intervalMs: number;
  /** A connect still pending after this long counts as lost (the first SYN retransmit is at 1 s). */
  cutoffMs: number;
  /** Over promptly answered connects (not lost), in ms; null when none was. */
  rtt: { min: number; p50: number; p95: number; max: number; avg: number; jitter: number } | null;
  results: SampleConnect[];
}

export interface PathMtuCheck {
  status: 'done' | 'skipped' | 'error';
  /** Why it was skipped, or the error. */
  reason?: string;
  /** The host the DF pings went to. */
  host?: string;
  pathMtu?: number | null;
  interface?: string | null;
  interfaceMtu?: number | null;
  probes?: number;
  /** lower-mtu's own reading: sizes above pathMtu vanished without an ICMP answer. */
  blackhole?: boolean | null;
  ms: number;
}

export interface NetworkEvidence {
  sample: ConnectSample | null;
  /** Why no sample was taken: the probe's connect already decided the verdict (refused, no route, no address). */
  sampleSkipped?: string;
  /**
   * Only when the sample lost connects: 5 more, 100 ms apart. Path loss shows here too; a listen
   * queue that overflowed under the 20 ms burst (a busy or small-backlog server) does not.
   */
  recheck?: ConnectSample | null;
  pathMtu: PathMtuCheck | null;
  thresholds: { maxRttMs: number; maxLost: number };
}

/**
 * The client profiles of `compatibility`, named for what the client offers: `default` SSL|HYBRID
 * and falls back (mstsc, FreeRDP), `nla` CredSSP only, `tls` TLS only (CredSSP off), `rdp`
 * Standard RDP Security only, `validating` the default client that also requires a certificate it
 * trusts (mstsc's "do not connect if authentication fails").
 */
export const CLIENT_PROFILES = ['default', 'nla', 'tls', 'rdp', 'validating'] as const;
export type ClientProfile = (typeof CLIENT_PROFILES)[number];

export interface Compatibility {
  client: ClientProfile;
  /** Gets through the security layer (credentials aside); null where the evidence cannot say. */
  connects: boolean | null;
  why: string;
}

export interface Verdict {
  cause: Cause;
  /** 0.0-1.0: how sure the evidence makes us. */
  confidence: number;
  /** One sentence: what is wrong (or that nothing is). */
  summary: string;
  evidence: string[];
  recipe: string | null;
  /** What to run next: exact commands only (the first fits this machine best). */
  next: string[];
  /** Prose that goes with them: what a channel needs, what to check by hand. */
  notes: string[];
  /** Which clients connect, one entry per profile (CLIENT_PROFILES order). */
  compatibility: Compatibility[];
  /** The same in one line for humans, e.g. "NLA required: clients without CredSSP fail". */
  clients: string;
}

interface Finding {
  cause: Cause;
  confidence: number;
  summary: string;
  /** The probe's failure could be the network's doing (timeouts, silence). */
  networkish?: boolean;
  /** A TLS flight that did not arrive: the path-MTU evidence decides. */
  flightLost?: boolean;
}

const DPUM = '0300000902f0802180';
const fmt = (ms: number) => (ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`);

// ---------------------------------------------------------------- evidence lines

function connectLine(p: ProbeResult): string {
  const c = p.connect;
  switch (c.outcome) {
    case 'accepted': return `TCP connect to ${p.endpoint}${p.address && p.address !== p.host ? ` (${p.address})` : ''}: accepted in ${fmt(c.ms)}`;
    case 'refused': return `TCP connect to ${p.endpoint}: refused (RST) in ${fmt(c.ms)}: nothing listens on port ${p.port}`;
    case 'timeout': return `TCP connect to ${p.endpoint}: no answer within ${fmt(c.ms)} (SYN dropped or host down)`;
    case 'unreachable': return `TCP connect to ${p.endpoint}: ${c.error ?? 'unreachable'} (no route to the host)`;
    case 'reset': return `TCP connect to ${p.endpoint}: accepted and reset at once (${c.error ?? 'RST'})`;
    case 'unresolved': return `DNS lookup of ${p.host} failed after ${fmt(c.ms)}: ${p.dns?.error ?? c.error ?? 'no address'}; nothing was sent to the host`;
    default: return `TCP connect to ${p.endpoint} failed: ${c.error ?? c.outcome}`;
  }
}

function negotiationLine(n: NegotiationStep, label = 'X.224'): string {
  const asked = `${label}: asked for ${protocolLabel(n.requested)}`;
  const trailing = n.trailing?.startsWith(DPUM) ? ', then an MCS Disconnect Provider Ultimatum' : n.trailing ? `, then ${n.trailing.length / 2} more bytes` : '';
  switch (n.outcome) {
    case 'response': return `${asked}; server selected ${protocolLabel(n.selectedProtocol!)} in ${fmt(n.ms)}${trailing}`;
    case 'failure': return `${asked}; server answered RDP_NEG_FAILURE ${n.failureCode} ${n.failureName}: ${n.failureMeaning}${trailing}`;
    case 'no-negotiation': return `${asked}; server answered without negotiation data (a server older than Windows Server 2008: Standard RDP Security only)${trailing}`;
    case 'not-x224': return `${asked}; the answer is not X.224 (${n.reason}): ${n.preview}`;
    case 'closed': return `${asked}; server closed the connection before answering${n.preview ? ` (after ${n.preview})` : ''} in ${fmt(n.ms)}`;
    case 'reset': return `${asked}; server reset the connection before answering`;
    case 'timeout': return `${asked}; no answer within ${fmt(n.ms)}${n.preview ? ` (only ${n.bytes} bytes: ${n.preview})` : ''}`;
    default: return `${asked}; could not connect (${n.connect?.outcome ?? 'not connected'}${n.connect?.error ? `: ${n.connect.error}` : ''})`;
  }
}

function tlsLine(t: TlsResult, label = 'TLS'): string {
  if (t.outcome === 'ok') return `${label}: ${t.version} ${t.cipherStandardName ?? t.cipher ?? ''} completed in ${fmt(t.ms)} (${t.bytesReceived} bytes from the server)`;
  return `${label} (offered ${t.offered}): ${t.detail}${t.outcome === 'silence' || t.outcome === 'stalled' ? ` for ${fmt(t.ms)}` : ''}`;
}

function certLine(t: TlsResult): string | null {
  const c = t.certificate;
  if (!c) return null;
  const validity = c.expired ? `EXPIRED on ${c.validTo.slice(0, 10)} (${-c.daysLeft} days ago)`
    : c.notYetValid ? `NOT YET VALID: valid from ${c.validFrom.slice(0, 10)} (check the server's and this machine's clocks)`
    : `valid ${c.validFrom.slice(0, 10)} to ${c.validTo.slice(0, 10)} (${c.daysLeft} days left)`;
  const key = `${c.keyType}${c.keyBits ? ` ${c.keyBits}` : ''}${c.curve ? ` ${c.curve}` : ''}`;
  const sans = c.subjectAltNameCount ? `, ${c.subjectAltNameCount} subject alternative name${c.subjectAltNameCount > 1 ? 's' : ''}` : '';
  return `certificate: ${c.subject}, ${c.selfSigned ? 'self-signed' : `issued by ${c.issuer}`}, ${validity}, ${key}, thumbprint ${c.thumbprint}${sans}`;
}

/** The probe's steps as evidence lines. */
export function probeEvidence(p: ProbeResult): string[] {
  const ev = [connectLine(p)];
  if (p.negotiation) ev.push(negotiationLine(p.negotiation));
  for (const f of p.followUps) ev.push(negotiationLine(f, `follow-up (${f.why})`));
  if (p.tls) {
    ev.push(tlsLine(p.tls));
    const cl = certLine(p.tls);
    if (cl) ev.push(cl);
  }
  const m = p.mssRetry;
  if (m) {
    if (m.skipped) ev.push(`small-segment retry skipped: ${m.skipped}`);
    else if (m.arrived) ev.push(`same request with a ${m.mss}-byte segment size (via ${m.helper}): the TLS flight arrived (${m.tls?.bytesReceived} bytes${m.tls?.version ? `, ${m.tls.version}` : ''}): full-size packets are lost on the path, small ones pass`);
    else if (m.tls) ev.push(`same request with a ${m.mss}-byte segment size (via ${m.helper}): still ${m.tls.outcome} (${m.tls.detail}): packet size is not the problem`);
    else if (m.negotiation) ev.push(negotiationLine(m.negotiation, `small-segment retry (${m.mss} bytes, via ${m.helper})`));
    else ev.push(`small-segment retry (${m.mss} bytes, via ${m.helper}): connect ${m.connect?.outcome}${m.connect?.error ? ` (${m.connect.error})` : ''}`);
  }
  const v = p.tlsVersions;
  if (v) {
    const refused = v.results.filter((r) => r.accepted === false).map((r) => r.version);
    const unknown = v.results.filter((r) => r.accepted === null).map((r) => `${r.version} (${r.detail})`);
    ev.push(`TLS versions accepted: ${v.accepted.join(', ') || 'none'}${refused.length ? `; refused: ${refused.join(', ')}` : ''}${unknown.length ? `; not tested: ${unknown.join(', ')}` : ''}${v.untested.length ? `; no connection left for ${v.untested.join(', ')}` : ''}`);
  }
  for (const f of p.clientChecks ?? []) ev.push(negotiationLine(f, `client check (${f.why})`));
  ev.push(`connections used by the probe: ${p.connections}`);
  return ev;
}

// ---------------------------------------------------------------- probe-only finding

const MODERN: ReadonlySet<string> = new Set(['TLSv1.2', 'TLSv1.3']);

function tlsFinding(p: ProbeResult, t: TlsResult): Finding {
  const scan = p.tlsVersions;
  const accepted = scan?.accepted ?? [];
  const modern = accepted.filter((v) => MODERN.has(v));
  const old = accepted.filter((v) => !MODERN.has(v));
  switch (t.outcome) {
    case 'ok': {
      const c = t.certificate;
      if (c?.expired) return { cause: 'certificate-expired', confidence: 0.95, summary: `the server's RDP certificate expired on ${c.validTo.slice(0, 10)}` };
      if (c?.notYetValid) return { cause: 'certificate-expired', confidence: 0.85, summary: `the server's RDP certificate is not valid until ${c.validFrom.slice(0, 10)} (or a clock is wrong)` };
      if (!c) return { cause: 'healthy', confidence: 0.7, summary: 'negotiation and TLS complete (the certificate could not be read)' };
      return { cause: 'healthy', confidence: 0.95, summary: `negotiation and TLS complete (${t.version}), certificate valid for ${c.daysLeft} more days` };
    }
    case 'not-tls':
      return { cause: 'certificate-key-unusable', confidence: 0.9, summary: 'the server chose TLS, then aborted instead of sending a ServerHello: it cannot use its certificate or private key' };
    case 'closed':
    case 'reset': {
      const how = t.outcome === 'reset' ? 'resets' : 'closes';
      if (t.bytesReceived > 0) return { cause: 'certificate-key-unusable', confidence: 0.6, summary: `the server ${how} the connection in the middle of its TLS flight` };
      if (modern.length) return { cause: 'certificate-key-unusable', confidence: 0.6, summary: `the server ${how} some TLS handshakes and completes others (${modern.join(', ')}): one of several servers behind this address, or an intermittent key problem` };
      if (old.length) return { cause: 'tls-version-mismatch', confidence: 0.85, summary: `the server ${how} a modern ClientHello but accepts ${old.join(', ')}: no TLS version in common with a modern client` };
      const scanned = scan && scan.results.some((r) => r.accepted === false);
      return { cause: 'certificate-key-unusable', confidence: scanned ? 0.9 : 0.8, summary: `the server chose TLS, then ${t.outcome === 'reset' ? 'reset' : 'closed'} the connection right after our ClientHello${scanned ? ' for every TLS version' : ''}: it cannot use its certificate's private key` };
    }
    case 'alert': {
      const name = t.alert?.name ?? 'unknown';
      if (old.length && !modern.length) return { cause: 'tls-version-mismatch', confidence: 0.95, summary: `the server only accepts ${old.join(', ')} (alert ${name} to TLS 1.2/1.3): no TLS version in common with a modern client` };
      if (modern.length) return { cause: 'tls-version-mismatch', confidence: 0.6, summary: `the server refused a modern ClientHello with alert ${name}, but completed ${modern.join(', ')} with legacy ciphers: its TLS cipher settings exclude modern clients` };
      if (name === 'protocol_version') return { cause: 'tls-version-mismatch', confidence: 0.9, summary: 'the server refused every TLS version we offered (alert protocol_version): no TLS version in common with a modern client' };
      if (name === 'internal_error') return { cause: 'certificate-key-unusable', confidence: 0.6, summary: 'the server failed internally while building its TLS answer (alert internal_error): most often its certificate\'s private key cannot be used' };
      if (name === 'handshake_failure' || name === 'insufficient_security') return { cause: 'tls-version-mismatch', confidence: 0.7, summary: `the server refused every TLS handshake with alert ${name}: no TLS version or cipher in common with a modern client` };
      return { cause: 'tls-version-mismatch', confidence: 0.5, summary: `the server ended the TLS handshake with alert ${name}` };
    }
    case 'silence':
    case 'stalled': {
      const m = p.mssRetry;
      const lost = t.outcome === 'silence' ? 'never arrives' : 'stops half-way';
      if (m?.arrived) return { cause: 'mtu-blackhole', confidence: 0.95, summary: `small packets pass but the server's TLS flight ${lost}; with a ${m.mss}-byte segment size it arrives: the path drops full-size packets (path-MTU black hole)`, networkish: true, flightLost: true };
      if (m?.tls || m?.negotiation) return { cause: 'certificate-key-unusable', confidence: 0.5, summary: `the server chose TLS and then never answered our ClientHello, also with small segments: a hung TLS stack or unusable key (not packet size)`, networkish: true };
      return { cause: 'mtu-blackhole', confidence: 0.6, summary: `small packets pass but the server's TLS flight ${lost}: suspect a path that drops large packets (path-MTU black hole)`, networkish: true, flightLost: true };
    }
    case 'oversized':
    case 'protocol-error':
      return { cause: 'certificate-key-unusable', confidence: 0.5, summary: 'the server chose TLS, then sent malformed TLS instead of a ServerHello and certificate' };
    default:
      return { cause: 'certificate-key-unusable', confidence: 0.3, summary: `the TLS handshake failed: ${t.detail}` };
  }
}

function negotiationFinding(p: ProbeResult, n: NegotiationStep): Finding {
  switch (n.outcome) {
    case 'response':
      if (n.selectedProtocol === 0) return { cause: 'security-layer-mismatch', confidence: 0.9, summary: 'the server chose Standard RDP Security although TLS and NLA were offered: a client that requires TLS or NLA is refused (a default client falls back to it and connects)' };
      if (p.tls) return tlsFinding(p, p.tls);
      return { cause: 'security-layer-mismatch', confidence: 0.4, summary: `the server selected ${protocolLabel(n.selectedProtocol!)}` };
    case 'failure':
      switch (n.failureCode) {
        case 1:
        case 2: {
          const rdp = p.followUps.find((f) => f.requested === 0);
          const alsoRdp = rdp?.outcome === 'response' || rdp?.outcome === 'no-negotiation';
          return { cause: 'security-layer-mismatch', confidence: alsoRdp || n.failureCode === 1 ? 0.95 : 0.85, summary: `the server refuses the security we asked for: ${n.failureMeaning}${alsoRdp ? ' (it accepts Standard RDP Security)' : ''}` };
        }
        case 3: return { cause: 'certificate-key-unusable', confidence: 0.95, summary: 'the server says it has no usable certificate (SSL_CERT_NOT_ON_SERVER)' };
        case 5:
        case 6: return { cause: 'nla-required', confidence: 0.9, summary: `${n.failureMeaning}: a client without it is refused` };
        case 4: {
          const last = p.followUps.at(-1);
          if (last && last.outcome !== 'failure') return negotiationFinding(p, last);
          if (last && last.failureCode !== 4) return negotiationFinding(p, last);
          return { cause: 'security-layer-mismatch', confidence: 0.5, summary: 'the server calls every request inconsistent (INCONSISTENT_FLAGS)' };
        }
        default: return { cause: 'security-layer-mismatch', confidence: 0.4, summary: `the server refused the negotiation with an unknown failure code ${n.failureCode}` };
      }
    case 'no-negotiation':
      return { cause: 'security-layer-mismatch', confidence: 0.8, summary: 'the server does not negotiate security (older than Windows Server 2008): Standard RDP Security only; a client that requires TLS or NLA is refused' };
    case 'not-x224':
      return { cause: 'not-rdp', confidence: 0.9, summary: `the service on port ${p.port} is not RDP: it answered ${n.preview}` };
    case 'timeout':
      // The request ends in the cookie line a real client sends: a line-based service (HTTP, SMTP,
      // ...) answers it, a banner service has spoken first. Total silence is a listener that
      // accepts (the kernel does that) and never reads: the hung TermService.
      if (n.bytes) return { cause: 'not-rdp', confidence: 0.8, summary: `the service on port ${p.port} sent ${n.bytes} bytes that are not an X.224 Connection Confirm, then nothing more` };
      return { cause: 'listener-hung', confidence: 0.75, summary: `port ${p.port} accepts TCP but never answered the X.224 request, not even the cookie line a client sends: a hung RDP listener (Remote Desktop Services)`, networkish: true };
    case 'closed':
    case 'reset': {
      const rdp = p.followUps.find((f) => f.requested === 0);
      const how = n.outcome === 'reset' ? 'reset' : 'closed';
      if (rdp && (rdp.outcome === 'response' || rdp.outcome === 'no-negotiation' || rdp.outcome === 'failure')) {
        return { cause: 'closed-by-server', confidence: 0.9, summary: `the server ${how} the connection when asked for TLS/NLA but answers Standard RDP Security: its certificate or TLS setup is broken` };
      }
      return { cause: 'closed-by-server', confidence: 0.85, summary: `the server accepts TCP and ${how} the connection before any negotiation answer` };
    }
    default:
      return { cause: 'closed-by-server', confidence: 0.4, summary: `the negotiation failed (${n.outcome})` };
  }
}

function probeFinding(p: ProbeResult): Finding {
  switch (p.connect.outcome) {
    case 'refused': return { cause: 'no-listener', confidence: 0.95, summary: `nothing listens on port ${p.port} (connection refused)` };
    case 'timeout': return { cause: 'unreachable', confidence: 0.8, summary: `connect to port ${p.port} timed out: SYNs are dropped (firewall, NSG, VPN) or the host is down`, networkish: true };
    case 'unreachable': return { cause: 'unreachable', confidence: 0.9, summary: `no route to ${p.host} (${p.connect.error ?? 'unreachable'})` };
    case 'unresolved': {
      const code = p.dns?.code ?? p.connect.error;
      // ENOTFOUND / ENODATA is the DNS answer itself; a timeout or EAI_AGAIN may be a DNS server
      // that is briefly down, but the fix starts at the name either way, never at the network path.
      return { cause: 'name-not-resolved', confidence: code === 'ENOTFOUND' || code === 'ENODATA' ? 0.95 : 0.85, summary: `${p.dns?.error ?? `the name ${p.host} does not resolve (${code ?? 'no address'})`}: no address to connect to` };
    }
    case 'reset': return { cause: 'closed-by-server', confidence: 0.85, summary: 'the server accepts TCP and resets the connection at once' };
    case 'error': return { cause: 'unreachable', confidence: 0.5, summary: `connect failed: ${p.connect.error ?? 'unknown error'}` };
    default: break;
  }
  if (!p.negotiation) return { cause: 'unreachable', confidence: 0.3, summary: 'the probe did not get to the negotiation' };
  return negotiationFinding(p, p.negotiation);
}

// ---------------------------------------------------------------- network

function sampleLine(s: ConnectSample): string {
  const r = s.rtt;
  const rtt = r ? `; prompt connect times min/p50/p95/max ${fmt(r.min)}/${fmt(r.p50)}/${fmt(r.p95)}/${fmt(r.max)}, jitter ${fmt(r.jitter)}` : '';
  const late = s.results.filter((x) => x.lost && x.outcome !== 'timeout').length;
  const silent = s.results.filter((x) => x.outcome === 'timeout').length;
  const other = s.attempts - s.answered - silent;
  const parts = [
    `${s.answered - late} answered promptly${s.refused ? ` (${s.refused} refused)` : ''}`,
    ...(late ? [`${late} only after a SYN retransmit (>= 1 s)`] : []),
    ...(silent ? [`${silent} not answered within ${s.cutoffMs} ms`] : []),
    ...(other ? [`${other} failed otherwise`] : []),
  ];
  const busy = s.maxLagMs && s.maxLagMs >= 20 ? ` (this machine was busy: up to ${fmt(s.maxLagMs)} of event-loop delay taken out of the connect times)` : '';
  return `connect sample: ${s.attempts} connects ${s.intervalMs} ms apart: ${parts.join(', ')}: ${s.lost ? `${s.lost} lost` : 'none lost'}${rtt}${busy}`;
}

function pathMtuLine(m: PathMtuCheck): string {
  if (m.status === 'skipped') return `path-MTU check skipped: ${m.reason}`;
  if (m.status === 'error') return `path-MTU check failed: ${m.reason}`;
  const ifc = m.interfaceMtu ? ` (interface ${m.interface ?? '?'} MTU ${m.interfaceMtu})` : '';
  if (m.pathMtu === null || m.pathMtu === undefined) return `path-MTU check to ${m.host}${ifc}: no conclusion (${m.reason ?? 'no don\'t-fragment ping got an answer'})`;
  const smaller = m.interfaceMtu && m.pathMtu < m.interfaceMtu;
  const silent = m.blackhole ? ', larger sizes vanish without an ICMP "fragmentation needed"' : '';
  return `path-MTU check (DF pings): ${m.pathMtu} bytes to ${m.host}${ifc}${smaller ? `: full-size packets do not pass${silent}` : ': full-size packets pass'} (${m.probes ?? '?'} probes, ${fmt(m.ms)})`;
}

/** Name the cause. `network` (diagnose) adds the connect sample and the path-MTU check. */
export function verdictOf(p: ProbeResult, network?: NetworkEvidence | null, env: ChannelEnv = thisMachine()): Verdict {
  let f = probeFinding(p);
  const evidence = probeEvidence(p);
  const notes: string[] = [];
  if (network) {
    const s = network.sample;
    const rc = network.recheck ?? null;
    const m = network.pathMtu;
    if (s) evidence.push(sampleLine(s));
    else if (network.sampleSkipped) evidence.push(`connect sample skipped: ${network.sampleSkipped}`);
    if (rc) evidence.push(`re-check, paced: ${sampleLine(rc).replace(/^connect sample: /, '')}`);
    if (m) evidence.push(pathMtuLine(m));
    const { maxRttMs, maxLost } = network.thresholds;
    // Losses that vanished when the connects were paced were the server's listen queue.
    const burstOnly = !!s && s.lost > 0 && !!rc && rc.lost === 0 && rc.answered > 0;
    const pathLost = !s ? 0 : burstOnly ? 0 : s.lost + (rc?.lost ?? 0);
    const attempts = (s?.attempts ?? 0) + (rc?.attempts ?? 0);
    if (burstOnly) {
      notes.push(`${s!.lost} of ${s!.attempts} connects sent ${s!.intervalMs} ms apart needed a SYN retransmit, but all ${rc!.attempts} sent ${rc!.intervalMs} ms apart were answered at once: the server's listen queue overflows when connections arrive in a burst (a busy server, or a small backlog), not loss on the path`);
    }
    const lossy = pathLost >= maxLost;
    const someLost = pathLost >= 1;
    const slow = !!s?.rtt && s.rtt.p50 >= maxRttMs;
    const mtuSmaller = m?.status === 'done' && typeof m.pathMtu === 'number' && typeof m.interfaceMtu === 'number' && m.pathMtu < m.interfaceMtu;
    const mtuFull = m?.status === 'done' && typeof m.pathMtu === 'number' && typeof m.interfaceMtu === 'number' && m.pathMtu >= m.interfaceMtu;
    const lossText = s ? `${pathLost} of ${attempts} connects lost` : '';
    const slowText = s?.rtt ? `median connect time ${fmt(s.rtt.p50)} (threshold ${maxRttMs} ms)` : '';
    const why = [lossy || (someLost && f.networkish) ? lossText : '', slow ? slowText : ''].filter(Boolean).join(', ');

    if (p.connect.outcome === 'timeout') {
      if (s && s.answered > 0) f = { cause: 'unstable-network', confidence: 0.85, summary: `connects time out intermittently: the probe's connect timed out, ${s.answered} of ${s.attempts} sample connects were answered` };
      else if (s) f = { cause: 'unreachable', confidence: 0.9, summary: `no connect was answered (the probe's and ${s.attempts - 1} more): SYNs to port ${p.port} are dropped (firewall, NSG, VPN) or the host is down` };
    } else if (f.networkish && (lossy || someLost || slow)) {
      notes.push(`the probe's failure (${f.summary}) is what a lossy or slow path produces`);
      f = { cause: 'unstable-network', confidence: lossy || slow ? 0.85 : 0.7, summary: `the path to ${p.endpoint} is unstable: ${why}` };
    } else if (f.flightLost && f.cause === 'mtu-blackhole') {
      if (mtuSmaller && f.confidence < 0.9) f = { ...f, confidence: 0.85, summary: `small packets pass but the server's TLS flight never arrives, and the path MTU is ${m!.pathMtu} < ${m!.interfaceMtu}: a path-MTU black hole` };
      else if (mtuFull && f.confidence < 0.9) f = { ...f, cause: 'certificate-key-unusable', confidence: 0.5, summary: 'the server chose TLS and never answered our ClientHello although full-size packets pass the path: a hung TLS stack or unusable key' };
    } else if (f.cause === 'healthy' && (lossy || slow)) {
      f = { cause: 'unstable-network', confidence: 0.8, summary: `RDP answers, but the path to ${p.endpoint} is unstable: ${[lossy ? lossText : '', slow ? slowText : ''].filter(Boolean).join(', ')}` };
    } else if (f.cause === 'healthy' && burstOnly) {
      f = { ...f, confidence: Math.min(f.confidence, 0.9) };
    } else if (f.cause === 'healthy' && someLost) {
      f = { ...f, confidence: 0.7 };
      notes.push(`${lossText}: light loss on the path (below the threshold of ${maxLost})`);
    } else if (lossy || slow) {
      notes.push(`also: the path is unstable (${[lossy ? lossText : '', slow ? slowText : ''].filter(Boolean).join(', ')})`);
    }
    if (mtuSmaller && f.cause !== 'mtu-blackhole') {
      notes.push(someLost
        ? `the DF-ping path MTU (${m!.pathMtu}) is below the interface MTU (${m!.interfaceMtu}), but on a path that loses packets a lost ping looks like a too-big one: measure again once the loss is fixed`
        : `the path MTU (${m!.pathMtu}) is smaller than the interface MTU (${m!.interfaceMtu}): large packets rely on ICMP "fragmentation needed" getting through`);
    }
  }
  const recipe = recipeFor(f.cause);
  const steps = nextSteps(f.cause, recipe, p, env);
  const compatibility = compatibilityOf(p, f);
  const clients = clientsLine(compatibility);
  // The cause names the best explanation for a default client; the clients it leaves out are named too.
  const summary = f.cause === 'healthy' && /^NLA required/.test(clients) ? `${f.summary}; ${clients}` : f.summary;
  return {
    cause: f.cause,
    confidence: Math.round(f.confidence * 100) / 100,
    summary,
    evidence: [...evidence, ...notes],
    recipe,
    next: steps.next,
    notes: steps.notes,
    compatibility,
    clients,
  };
}

// ---------------------------------------------------------------- compatibility

interface Outcome {
  connects: boolean | null;
  why: string;
  /** The security the client ends up with when it connects. */
  via?: 'tls' | 'nla' | 'rdp';
}

const HYBRIDS = PROTOCOL.HYBRID | PROTOCOL.HYBRID_EX;

/** Which clients get through the security layer, from the negotiation answers and the TLS handshake. */
export function compatibilityOf(p: ProbeResult, f: Pick<Finding, 'cause' | 'summary'>): Compatibility[] {
  const all = (connects: boolean | null, why: string) => CLIENT_PROFILES.map((client) => ({ client, connects, why }));
  if (f.cause === 'unstable-network') return all(null, `the path is unstable (${f.summary}): any client may or may not get through`);
  const n = answered(p);
  const steps = [...p.followUps, ...(p.clientChecks ?? [])];
  const answers = (s: NegotiationStep) => ['response', 'failure', 'no-negotiation'].includes(s.outcome);
  // A server that closes the first request may still answer a Standard RDP Security one (the
  // probe's follow-up): then that is what an `rdp` client gets. A default client does not fall back
  // after a close (FreeRDP gives up when the answer does not come).
  if (!n || p.connect.outcome !== 'accepted' || (!answers(n) && !steps.some(answers))) {
    return all(false, `no client gets an RDP answer: ${f.summary}`);
  }
  const asked = (requested: number) => steps.find((s) => s.requested === requested && s.outcome !== 'not-connected');
  const t = p.tls;
  const tls = (layer: 'tls' | 'nla'): Outcome => {
    const name = layer === 'nla' ? 'CredSSP (NLA) over TLS' : 'TLS';
    if (!t) return { connects: null, why: `the server would use ${name}, but no TLS handshake was tried` };
    if (t.outcome === 'ok') return { connects: true, why: `the server uses ${name}; the TLS handshake completes (${t.version})`, via: layer };
    return { connects: false, why: `the server chose ${name}, but the TLS handshake fails: ${t.detail}` };
  };
  const noBudget = p.connections >= MAX_CONNECTIONS ? `not asked: no connection left in the probe's budget of ${MAX_CONNECTIONS}` : 'not asked (the probe stopped before the client checks)';
  /** What one answer means for a client that offered only `profile`'s protocols. */
  const byAnswer = (s: NegotiationStep, profile: 'default' | 'nla' | 'tls' | 'rdp'): Outcome => {
    const asked = `asked with ${protocolLabel(s.requested)}`;
    if (s.outcome === 'no-negotiation') {
      return profile === 'default' || profile === 'rdp'
        ? { connects: true, why: `${asked}, the server answers without negotiation: Standard RDP Security`, via: 'rdp' }
        : { connects: false, why: `${asked}, the server answers without negotiation (Standard RDP Security only): a ${profile === 'nla' ? 'CredSSP' : 'TLS'}-only client gives up` };
    }
    if (s.outcome === 'failure') return { connects: false, why: `${asked}, the server refuses: RDP_NEG_FAILURE ${s.failureName}` };
    if (s.outcome !== 'response') return { connects: false, why: `${asked}, ${negotiationLine(s).split('; ').slice(1).join('; ')}` };
    const sel = s.selectedProtocol ?? 0;
    if (sel === PROTOCOL.RDP) {
      return profile === 'default' || profile === 'rdp'
        ? { connects: true, why: `${asked}, the server chooses Standard RDP Security`, via: 'rdp' }
        : { connects: false, why: `${asked}, the server chooses Standard RDP Security, which a ${profile === 'nla' ? 'CredSSP' : 'TLS'}-only client refuses` };
    }
    if (sel & HYBRIDS) return profile === 'tls' || profile === 'rdp' ? { connects: false, why: `${asked}, the server chose CredSSP, which was not offered` } : tls('nla');
    if (sel & PROTOCOL.SSL) return profile === 'nla' ? { connects: false, why: `${asked}, the server chooses TLS without CredSSP, which a CredSSP-only client refuses` } : tls('tls');
    return { connects: null, why: `${asked}, the server chose ${protocolLabel(sel)}` };
  };
  const sel = n.outcome === 'response' ? n.selectedProtocol ?? 0 : null;
  const legacy = n.outcome === 'no-negotiation' || sel === PROTOCOL.RDP;
  const code = n.outcome === 'failure' ? n.failureCode : undefined;
  const rdpCheck = asked(PROTOCOL.RDP);
  const nlaCheck = asked(PROTOCOL.HYBRID);

  // rdp: Standard RDP Security only.
  let rdp: Outcome;
  if (rdpCheck) rdp = byAnswer(rdpCheck, 'rdp');
  else if (legacy) rdp = byAnswer(n, 'rdp');
  else if (nlaCheck?.outcome === 'response' && nlaCheck.selectedProtocol === PROTOCOL.RDP) rdp = { connects: true, why: 'asked with HYBRID only, the server chose Standard RDP Security: it takes it', via: 'rdp' };
  else if (nlaCheck?.outcome === 'failure' && nlaCheck.failureCode === 1) rdp = { connects: false, why: 'asked with HYBRID only, the server answered SSL_REQUIRED_BY_SERVER: Standard RDP Security is refused too' };
  else if (code === 5 || code === 6) rdp = { connects: false, why: `the server requires CredSSP (RDP_NEG_FAILURE ${n.failureName}): Standard RDP Security is refused` };
  else rdp = { connects: null, why: noBudget };

  // nla: CredSSP only.
  let nla: Outcome;
  if (nlaCheck) nla = byAnswer(nlaCheck, 'nla');
  else if (sel !== null && sel & HYBRIDS) nla = tls('nla');
  else if (legacy) nla = byAnswer(n, 'nla');
  else if (code === 2 || code === 3) nla = { connects: false, why: `CredSSP runs over TLS, which the server refuses (RDP_NEG_FAILURE ${n.failureName})` };
  else if (sel === PROTOCOL.SSL && t && t.outcome !== 'ok') nla = { connects: false, why: `CredSSP runs over TLS, and the TLS handshake fails: ${t.detail}` };
  else nla = { connects: null, why: noBudget };

  // tls: TLS only.
  let tlsOnly: Outcome;
  const sslCheck = asked(PROTOCOL.SSL);
  if (sslCheck) tlsOnly = byAnswer(sslCheck, 'tls');
  else if (sel === PROTOCOL.SSL) tlsOnly = byAnswer(n, 'tls');
  else if (legacy) tlsOnly = byAnswer(n, 'tls');
  else if (sel !== null && sel & HYBRIDS) {
    const c = rdpCheck;
    if (c?.outcome === 'failure' && (c.failureCode === 5 || c.failureCode === 6)) tlsOnly = { connects: false, why: `NLA required: asked with Standard RDP Security only, the server answered ${c.failureName}` };
    else if (c && (c.outcome === 'response' || (c.outcome === 'failure' && c.failureCode === 1))) {
      const o = tls('tls');
      tlsOnly = o.connects ? { ...o, why: `the server does not require CredSSP (asked with Standard RDP Security only: ${c.outcome === 'response' ? 'accepted' : c.failureName}); ${o.why}` } : o;
    } else tlsOnly = { connects: null, why: c ? `asked with Standard RDP Security only: ${negotiationLine(c).split('; ').slice(1).join('; ')}` : noBudget };
  } else if (code === 2 || code === 3 || code === 5 || code === 6) tlsOnly = { connects: false, why: `the server refuses TLS without more (RDP_NEG_FAILURE ${n.failureName})` };
  else tlsOnly = { connects: null, why: `the server answered ${n.failureName ?? n.outcome} to a request that offered TLS` };

  // default: the first request; after a refusal it falls back to TLS only, then Standard RDP Security.
  let def: Outcome;
  if (n.outcome !== 'failure') def = byAnswer(n, 'default');
  else if (tlsOnly.connects) def = { ...tlsOnly, why: `falls back to TLS only: ${tlsOnly.why}` };
  else if (rdp.connects) def = { ...rdp, why: `refused with RDP_NEG_FAILURE ${n.failureName}, falls back to Standard RDP Security: ${rdp.why}` };
  else if (tlsOnly.connects === false && rdp.connects === false) def = { connects: false, why: `refused with RDP_NEG_FAILURE ${n.failureName}, and its fall-backs (TLS only, Standard RDP Security) are refused too` };
  else def = { connects: null, why: `refused with RDP_NEG_FAILURE ${n.failureName}; whether a fall-back gets in was not asked` };

  // validating: the default client that requires a certificate it trusts.
  let validating: Outcome;
  const c = t?.certificate;
  if (def.connects === false) validating = { connects: false, why: `the default client fails already: ${def.why}` };
  else if (def.via === 'rdp') validating = { connects: false, why: 'Standard RDP Security has no certificate to check: a client that requires server authentication refuses it (mstsc "do not connect"; FreeRDP checks nothing there and connects)' };
  else if (def.connects === null) validating = { connects: null, why: def.why };
  else if (!c) validating = { connects: null, why: 'the certificate could not be read' };
  else if (c.expired) validating = { connects: false, why: `the certificate expired on ${c.validTo.slice(0, 10)}` };
  else if (c.notYetValid) validating = { connects: false, why: `the certificate is not valid before ${c.validFrom.slice(0, 10)}` };
  else if (t?.authorizationError) validating = { connects: null, why: `${c.selfSigned ? 'self-signed' : `issued by ${c.issuer}`} (${t.authorizationError} here): it connects only where this certificate${c.selfSigned ? '' : '\'s issuer'} is trusted and its name matches the name the client uses` };
  else validating = { connects: null, why: `the chain is trusted here; it connects if the client trusts the same root and the certificate's name (${c.subject}${c.subjectAltNames.length ? `, ${c.subjectAltNames.join(', ')}` : ''}) matches the name it uses` };

  const o: Record<ClientProfile, Outcome> = { default: def, nla, tls: tlsOnly, rdp, validating };
  return CLIENT_PROFILES.map((client) => ({ client, connects: o[client].connects, why: o[client].why }));
}

/** One line: which clients connect. */
export function clientsLine(list: Compatibility[]): string {
  const by = Object.fromEntries(list.map((c) => [c.client, c.connects])) as Record<ClientProfile, boolean | null>;
  if (by.default && by.nla && by.tls === false && by.rdp === false) return 'NLA required: clients without CredSSP fail';
  if (by.default && by.rdp && by.tls === false && by.nla === false) return 'Standard RDP Security only: clients that require TLS or NLA fail; a default client falls back and connects';
  if (list.every((c) => c.connects === false)) return 'no client connects';
  if (list.every((c) => c.connects === null)) return 'which clients connect cannot be told';
  const names = (v: boolean | null) => list.filter((c) => c.connects === v).map((c) => c.client);
  return [
    names(true).length ? `connect: ${names(true).join(', ')}` : '',
    names(false).length ? `fail: ${names(false).join(', ')}` : '',
    names(null).length ? `cannot tell: ${names(null).join(', ')}` : '',
  ].filter(Boolean).join('; ');
}

// ---------------------------------------------------------------- next steps

/** What this machine can reach a Windows server with: its OS and the channel programs on PATH. */
export interface ChannelEnv {
  platform: NodeJS.Platform;
  has: (program: string) => boolean;
}

export function thisMachine(): ChannelEnv {
  return { platform: process.platform, has: (program) => findProgram(program) !== null };
}

const CLIENT_SIDE = new Set(['vpn-mtu', 'unstable-network']);

const isLoopback = (host: string) => /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host.toLowerCase() === 'localhost';
const isIpLiteral = (host: string) => /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.includes(':');

/**
 * The --target values that can work from this machine for a server-side step on `host`, best
 * first, and what each needs. `--emit` (print the PowerShell to paste) always works and is last.
 * `local` only on Windows; WinRM only with pwsh (or Windows PowerShell); an IP address over WinRM
 * takes HTTPS with a credential (HTTP would need TrustedHosts and explicit credentials anyway).
 */
export function serverTargets(host: string, env: ChannelEnv = thisMachine()): { targets: string[]; notes: string[] } {
  const targets: string[] = [];
  const notes: string[] = [];
  const windows = env.platform === 'win32';
  const h = host.includes(':') ? `[${host}]` : host;
  if (isLoopback(host)) {
    if (windows) {
      targets.push('local');
      notes.push('--target local: run it from an elevated PowerShell (Run as administrator) on this machine');
    } else {
      notes.push(`${host} is this machine, which runs ${env.platform}: the server steps are PowerShell for Windows, so --target local cannot work here. If ${host} forwards to a Windows server (an SSH tunnel, a VPN client's proxy), run the recipe against that server (--target winrms://ADMIN@SERVER or ssh://ADMIN@SERVER), or paste the --emit script into an elevated PowerShell on it`);
    }
  } else {
    const winrm = env.has('pwsh') || (windows && env.has('powershell'));
    if (winrm) {
      if (windows && !isIpLiteral(host)) {
        targets.push(`winrm://${h}`);
        notes.push(`winrm://${h}: WinRM over HTTP (port 5985) with your own domain credentials (Kerberos); the server needs PowerShell remoting (Enable-PSRemoting)`);
      } else {
        targets.push(`winrms://ADMIN@${h}`);
        notes.push(`winrms://ADMIN@${h}: WinRM over HTTPS (port 5986); the server needs an HTTPS listener whose certificate this machine trusts for ${host}; PowerShell asks for ADMIN's password (replace ADMIN with an administrator of the server)${isIpLiteral(host) ? '. Plain winrm:// to an IP address would also need the address in this machine\'s TrustedHosts' : ''}`);
      }
    }
    if (env.has('ssh')) {
      targets.push(`ssh://ADMIN@${h}`);
      notes.push(`ssh://ADMIN@${h}: OpenSSH Server on the Windows server, key authentication for ADMIN (an administrator)`);
    }
    if (env.has('az')) {
      targets.push('azure://SUBSCRIPTION/RESOURCE_GROUP/VM');
      notes.push('azure://SUBSCRIPTION/RESOURCE_GROUP/VM: an Azure VM through Run Command (az login first); works when RDP and WinRM are down');
    }
    if (!targets.length) notes.push(`no channel program on this machine (pwsh for WinRM, ssh, az): paste the --emit script on the server, or install PowerShell 7 (pwsh) to use --target winrms://ADMIN@${h}`);
  }
  notes.push('--emit: prints the PowerShell to paste into an elevated PowerShell on the server; nothing runs here');
  return { targets, notes };
}

/** The exact commands that fix the cause (run-recipe), and the notes that go with them. */
export function nextSteps(cause: Cause, recipe: string | null, p: Pick<ProbeResult, 'endpoint' | 'host' | 'port'>, env: ChannelEnv = thisMachine()): { next: string[]; notes: string[] } {
  if (cause === 'healthy') return { next: [], notes: [] };
  if (cause === 'not-rdp') {
    return {
      next: [`Get-ItemProperty -LiteralPath 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp' -Name PortNumber`],
      notes: [`port ${p.port} on ${p.host} is not an RDP listener: the command above, in PowerShell on the server, shows the port RDP uses; then diagnose that port (npx tsx scripts/diagnose.ts ${p.host.includes(':') ? `[${p.host}]` : p.host}:PORT)`],
    };
  }
  if (cause === 'name-not-resolved') {
    return {
      next: [`nslookup ${p.host}`],
      notes: [`${p.host} does not resolve from this machine: check the spelling, the DNS suffix (a short name needs its domain), and over a VPN that it is connected and hands out its DNS servers; or give the IP address instead. No network fix applies: nothing was sent to the host`],
    };
  }
  if (!recipe) return { next: [], notes: [] };
  const base = `npx tsx scripts/run-recipe.ts ${recipe} --host ${p.endpoint}`;
  if (CLIENT_SIDE.has(recipe)) {
    return { next: [base], notes: cause === 'unreachable' ? [`check the firewall, NSG and VPN between here and ${p.host} for port ${p.port}`] : [] };
  }
  const t = serverTargets(p.host, env);
  const next = [...t.targets.map((x) => `${base} --target ${x}`), `${base} --emit`];
  return { next, notes: [...(next.length > 1 ? ['run one of these commands (the first fits this machine best)'] : []), ...t.notes] };
}

// ---------------------------------------------------------------- human output

/** Verdict first, then the evidence, then the command. */
export function formatVerdict(v: Verdict & { endpoint: string }): string {
  const ok = v.cause === 'healthy';
  const head = `${ok ? chalk.green('✔') : chalk.red('✘')} ${chalk.bold(v.endpoint)}: ${ok ? chalk.green(v.cause) : chalk.red(v.cause)} ${chalk.dim(`(confidence ${v.confidence.toFixed(2)})`)}`;
  const clients = v.summary.endsWith(v.clients) ? [] : [`  ${chalk.bold('Clients:')} ${v.clients}`];
  const lines = [head, `  ${v.summary}`, ...clients, ...v.evidence.map((e) => `  ${chalk.dim('•')} ${e}`)];
  if (v.next.length) lines.push('', chalk.bold(v.recipe ? `Fix (recipe ${v.recipe}):` : 'Next:'), ...v.next.map((n) => `  ${n}`));
  if (v.notes.length) lines.push(...v.notes.map((n) => `  ${chalk.dim('•')} ${chalk.dim(n)}`));
  return lines.join('\n');
}
