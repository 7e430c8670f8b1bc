// The TLS step of the RDP probe: a handshake on a stream that already carried the X.224 exchange,
// with every byte the server sends counted and the first ones kept, so that a handshake that dies
// can be named from the wire (closed, reset, an alert, RDP bytes instead of TLS, silence, a flight
// that stops half-way, or one larger than any certificate chain) rather than from OpenSSL's
// message alone. Also: the certificate as Windows shows it (SHA-1 thumbprint, subject, validity,
// key type and size). node:tls and node:crypto are loaded only when a handshake is made.
import { Duplex } from 'node:stream';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { lateSafeTimeout } from './tcp.ts';

/** TLS versions as Node names them, oldest first. */
export const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];

/**
 * Bytes we accept from the server before the handshake completes. A real RDP server's first
 * flight is a few KB (the lab's 140-SAN RSA-4096 certificate makes 9.3 KB); OpenSSL itself refuses
 * certificate lists over 100 KB. Anything beyond this is cut off and reported as oversized.
 */
export const MAX_TLS_FLIGHT_BYTES = 256 * 1024;

/** TLS alert descriptions (RFC 8446 6.2, plus the TLS 1.0-1.2 ones). */
export const TLS_ALERTS: Record<number, string> = {
  0: 'close_notify', 10: 'unexpected_message', 20: 'bad_record_mac', 21: 'decryption_failed', 22: 'record_overflow',
  30: 'decompression_failure', 40: 'handshake_failure', 41: 'no_certificate', 42: 'bad_certificate',
  43: 'unsupported_certificate', 44: 'certificate_revoked', 45: 'certificate_expired', 46: 'certificate_unknown',
  47: 'illegal_parameter', 48: 'unknown_ca', 49: 'access_denied', 50: 'decode_error', 51: 'decrypt_error',
  60: 'export_restriction', 70: 'protocol_version', 71: 'insufficient_security', 80: 'internal_error',
  86: 'inappropriate_fallback', 90: 'user_canceled', 100: 'no_renegotiation', 109: 'missing_extension',
  110: 'unsupported_extension', 111: 'certificate_unobtainable', 112: 'unrecognized_name',
  113: 'bad_certificate_status_response', 114: 'bad_certificate_hash_value', 115: 'unknown_psk_identity',
  116: 'certificate_required', 120: 'no_application_protocol',
};

export interface TlsAlert {
  level: 'warning' | 'fatal' | 'unknown';
  code: number | null;
  name: string;
}

export interface CertInfo {
  /** "CN=host, O=org" (RDN order as in the certificate). */
  subject: string;
  issuer: string;
  selfSigned: boolean;
  /** ISO 8601. */
  validFrom: string;
  validTo: string;
  expired: boolean;
  notYetValid: boolean;
  /** Whole days until validTo (negative when expired), judged by this machine's clock. */
  daysLeft: number;
  /** 'RSA', 'RSA-PSS', 'EC', 'Ed25519', 'DSA', ... */
  keyType: string;
  /** RSA/DSA modulus bits, EC curve size; null when unknown. */
  keyBits: number | null;
  curve?: string;
  /** SHA-1 over the DER, uppercase hex without separators: what certlm.msc and the registry show. */
  thumbprint: string;
  sha256: string;
  serialNumber: string;
  /** First subjectAltName entries (the lab's large certificate has 140). */
  subjectAltNames: string[];
  subjectAltNameCount: number;
  derBytes: number;
}

export type TlsOutcome =
  | 'ok' // handshake completed
  | 'closed' // FIN before the handshake completed
  | 'reset' // RST before the handshake completed
  | 'alert' // the server sent a TLS alert
  | 'not-tls' // the server sent bytes that are not TLS records (e.g. an MCS disconnect)
  | 'silence' // nothing at all arrived before the timeout
  | 'stalled' // part of the server flight arrived, then nothing until the timeout
  | 'oversized' // more than MAX_TLS_FLIGHT_BYTES without completing: cut off
  | 'protocol-error' // TLS records that OpenSSL rejected (malformed, unexpected message, ...)
  | 'error'; // local failure (e.g. our options)

export interface TlsResult {
  outcome: TlsOutcome;
  ms: number;
  /** Versions we offered, e.g. "TLSv1.2-TLSv1.3". */
  offered: string;
  bytesReceived: number;
  /** Hex of the first bytes the server sent in this step (at most 32). */
  firstBytes?: string;
  /** One line for humans, e.g. "server closed the connection right after our ClientHello". */
  detail: string;
  version?: string;
  cipher?: string;
  cipherStandardName?: string;
  certificate?: CertInfo;
  /** Node's verdict on the chain (we never reject; e.g. DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED). */
  authorizationError?: string;
  alert?: TlsAlert;
  /** Node/OpenSSL error code, when there was one. */
  error?: string;
}

// ---------------------------------------------------------------- pure classification

/** Parse a TLS alert record (15 03 0x 00 02 LEVEL DESC); null when `buf` does not start with one. */
export function parseTlsAlert(buf: Buffer): TlsAlert | null {
  if (buf.length < 1 || buf[0] !== 0x15) return null;
  if (buf.length >= 2 && buf[1] !== 0x03) return null;
  if (buf.length < 7) return { level: 'unknown', code: null, name: 'truncated alert' };
  const len = buf.readUInt16BE(3);
  if (len < 2) return { level: 'unknown', code: null, name: 'malformed alert' };
  const lvl = buf[5]!;
  const code = buf[6]!;
  return { level: lvl === 1 ? 'warning' : lvl === 2 ? 'fatal' : 'unknown', code, name: TLS_ALERTS[code] ?? `alert_${code}` };
}

/** Alert named by a Node error code such as ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION. */
export function alertFromErrorCode(code: string | undefined): TlsAlert | null {
  const m = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)$/.exec(code ?? '');
  if (!m) return null;
  const name = m[1]!.toLowerCase();
  const entry = Object.entries(TLS_ALERTS).find(([, n]) => n === name);
  return { level: 'fatal', code: entry ? Number(entry[0]) : null, name };
}

/** Do these bytes start like a TLS record (content type 20-23, major version 3)? */
export function looksLikeTls(buf: Buffer): boolean {
  if (buf.length === 0) return false;
  if (buf[0]! < 0x14 || buf[0]! > 0x17) return false;
  return buf.length < 2 || buf[1] === 0x03;
}

/** Name non-TLS bytes: RDP (TPKT), HTTP, text, or hex. */
export function describeNonTls(buf: Buffer): string {
  if (buf.length >= 9 && buf.subarray(0, 9).equals(Buffer.from('0300000902f0802180', 'hex'))) {
    return 'an MCS Disconnect Provider Ultimatum (RDP data: the server aborted the connection)';
  }
  if (buf[0] === 0x03 && (buf.length < 2 || buf[1] === 0x00)) return 'RDP (TPKT) data instead of a TLS record';
  const text = buf.subarray(0, 24).toString('latin1');
  if (/^[\x20-\x7e\r\n\t]+$/.test(text)) return `text ${JSON.stringify(text)}`;
  return `bytes ${buf.subarray(0, 16).toString('hex')}`;
}

export interface TlsWireFacts {
  /** The handshake completed. */
  completed: boolean;
  /** Our timer fired. */
  timedOut: boolean;
  /** Total bytes received in this step. */
  bytes: number;
  /** First bytes received (any length, may be truncated). */
  head: Buffer;
  /** How the transport ended, if it did: FIN, RST, or still open. */
  ended: 'fin' | 'reset' | null;
  /** The byte cap was hit. */
  capped: boolean;
  /** Node/OpenSSL error code of the TLS socket, if any. */
  errorCode?: string;
}

/**
 * Name what happened to a handshake from the facts seen on the wire. Pure and total: any
 * combination of inputs (random, truncated) gives one outcome and one line of detail.
 */
export function classifyTls(f: TlsWireFacts): { outcome: TlsOutcome; detail: string; alert?: TlsAlert } {
  if (f.completed) return { outcome: 'ok', detail: 'handshake completed' };
  if (f.capped) return { outcome: 'oversized', detail: `the server sent more than ${MAX_TLS_FLIGHT_BYTES} bytes without completing the handshake (cut off)` };
  const head = f.head;
  if (f.bytes === 0 || head.length === 0) {
    if (f.ended === 'reset') return { outcome: 'reset', detail: 'the server reset the connection right after our ClientHello, without sending anything' };
    if (f.ended === 'fin') return { outcome: 'closed', detail: 'the server closed the connection right after our ClientHello, without sending anything' };
    if (f.timedOut) return { outcome: 'silence', detail: 'no byte of the server\'s TLS flight arrived (silence after our ClientHello)' };
    return { outcome: 'error', detail: `the handshake failed before anything arrived (${f.errorCode ?? 'unknown error'})` };
  }
  const rawAlert = parseTlsAlert(head);
  if (rawAlert) return { outcome: 'alert', detail: `the server answered our ClientHello with TLS alert ${rawAlert.name}${rawAlert.code !== null ? ` (${rawAlert.code})` : ''}`, alert: rawAlert };
  if (!looksLikeTls(head)) return { outcome: 'not-tls', detail: `the server sent ${describeNonTls(head)} instead of a ServerHello` };
  const codeAlert = alertFromErrorCode(f.errorCode);
  if (codeAlert) return { outcome: 'alert', detail: `the server sent TLS alert ${codeAlert.name} during the handshake (after ${f.bytes} bytes)`, alert: codeAlert };
  if (f.timedOut) return { outcome: 'stalled', detail: `${f.bytes} bytes of the server's TLS flight arrived, then nothing (the rest never came)` };
  if (f.ended === 'reset') return { outcome: 'reset', detail: `the server reset the connection in the middle of its TLS flight (after ${f.bytes} bytes)` };
  if (f.ended === 'fin' && (!f.errorCode || f.errorCode === 'ECONNRESET')) return { outcome: 'closed', detail: `the server closed the connection in the middle of its TLS flight (after ${f.bytes} bytes)` };
  return { outcome: 'protocol-error', detail: `the server's TLS records were rejected (${f.errorCode ?? 'unknown error'}, after ${f.bytes} bytes)` };
}

// ---------------------------------------------------------------- certificate

const KEY_TYPES: Record<string, string> = { rsa: 'RSA', 'rsa-pss': 'RSA-PSS', ec: 'EC', ed25519: 'Ed25519', ed448: 'Ed448', dsa: 'DSA', dh: 'DH', x25519: 'X25519', x448: 'X448' };
const CURVE_BITS: Record<string, number> = { prime256v1: 256, 'P-256': 256, secp384r1: 384, 'P-384': 384, secp521r1: 521, 'P-521': 521, secp256k1: 256 };

function iso(d: string): string {
  const t = new Date(d);
  return Number.isNaN(t.getTime()) ? d : t.toISOString();
}

/** Certificate details from DER, judged against `now`. */
export async function certInfo(der: Buffer, now = new Date()): Promise<CertInfo> {
  const { X509Certificate } = await import('node:crypto');
  const x = new X509Certificate(der);
  const from = new Date(x.validFrom);
  const to = new Date(x.validTo);
  const key = x.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  const type = key.asymmetricKeyType ?? 'unknown';
  // Self-signed: it names itself as issuer and its own key verifies its signature. Not
  // checkIssued(): OpenSSL's issuer check also wants keyUsage keyCertSign, which RDP certificates
  // (digitalSignature, keyEncipherment; EKU serverAuth) do not have.
  let selfSigned = false;
  try {
    selfSigned = x.subject === x.issuer && x.verify(key);
  } catch {
    selfSigned = false; // an algorithm OpenSSL cannot verify: we cannot claim it is self-signed
  }
  const sans = (x.subjectAltName ?? '').split(/,\s*/).filter(Boolean);
  const curve = details.namedCurve;
  const keyBits = details.modulusLength ?? (curve ? CURVE_BITS[curve] ?? null : type === 'ed25519' ? 256 : type === 'ed448' ? 456 : null);
  return {
    subject: x.subject.split('\n').join(', '),
    issuer: x.issuer.split('\n').join(', '),
    selfSigned,
    validFrom: iso(x.validFrom),
    validTo: iso(x.validTo),
    expired: now.getTime() > to.getTime(),
    notYetValid: now.getTime() < from.getTime(),
    daysLeft: Math.floor((to.getTime() - now.getTime()) / 86_400_000),
    keyType: KEY_TYPES[type] ?? type,
    keyBits,
    ...(curve ? { curve } : {}),
    thumbprint: x.fingerprint.replace(/:/g, '').toUpperCase(),
    sha256: x.fingerprint256.replace(/:/g, '').toUpperCase(),
    serialNumber: x.serialNumber.toUpperCase(),
    subjectAltNames: sans.slice(0, 5),
    subjectAltNameCount: sans.length,
    derBytes: der.length,
  };
}

// ---------------------------------------------------------------- the wire tap

/**
 * A Duplex between TLS and the transport that counts and keeps the first bytes the server sends,
 * notes FIN/RST, and cuts the stream off past a byte cap. TLS writes go straight through.
 */
class Tap extends Duplex {
  bytes = 0;
  head = Buffer.alloc(0);
  ended: 'fin' | 'reset' | null = null;
  capped = false;

  constructor(private readonly inner: Duplex, private readonly cap: number) {
    super();
    inner.on('data', (d: Buffer) => {
      if (this.capped) return;
      this.bytes += d.length;
      if (this.head.length < 64) this.head = Buffer.concat([this.head, d.subarray(0, 64 - this.head.length)]);
      if (this.bytes > cap) {
        this.capped = true;
        inner.destroy();
        this.destroy();
        return;
      }
      if (!this.push(d)) inner.pause();
    });
    inner.on('end', () => {
      this.ended ??= 'fin';
      this.push(null);
    });
    inner.on('error', (e: NodeJS.ErrnoException) => {
      this.ended ??= e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'fin';
      this.destroy();
    });
    inner.on('close', () => {
      if (!this.destroyed) this.push(null);
    });
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.inner.destroyed || !this.inner.writable) return cb();
    this.inner.write(chunk, () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.inner.destroyed) this.inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}

export interface TlsHandshakeOptions {
  /** The transport: a connected socket right after the X.224 confirm, or any Duplex. */
  stream: Duplex;
  timeoutMs: number;
  /** SNI; only sent for DNS names (an IP address as SNI is not allowed by RFC 6066). */
  servername?: string;
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
  /** OpenSSL cipher string; defaults to Node's (a modern client). */
  ciphers?: string;
  maxBytes?: number;
  /** Clock for the certificate's validity (tests). */
  now?: Date;
  /** Call onSilence once if not a single byte has arrived after afterMs (and we are still waiting). */
  silence?: { afterMs: number; onSilence: () => void };
  /** Stop waiting now; the result is what a timeout at this moment would give. */
  signal?: AbortSignal;
}

/**
 * Run one TLS handshake on `stream` and describe it. Never throws and never waits longer than
 * timeoutMs (plus the few ms needed to read the certificate); the stream is destroyed afterwards.
 */
export async function tlsHandshake(o: TlsHandshakeOptions): Promise<TlsResult> {
  const tls = await import('node:tls');
  const min = o.minVersion ?? 'TLSv1.2';
  const max = o.maxVersion ?? 'TLSv1.3';
  const offered = min === max ? min : `${min}-${max}`;
  const t0 = performance.now();
  const ms = () => Math.round((performance.now() - t0) * 100) / 100;
  const tap = new Tap(o.stream, o.maxBytes ?? MAX_TLS_FLIGHT_BYTES);
  tap.on('error', () => { /* the TLS socket reports; the tap only records */ });
  o.stream.on('error', () => { /* recorded by the tap */ });

  return new Promise<TlsResult>((resolve) => {
    let done = false;
    let sock: TLSSocket | undefined;
    const finish = async (completed: boolean, timedOut: boolean, errorCode?: string) => {
      if (done) return;
      done = true;
      cancelTimeout();
      cancelSilence?.();
      o.signal?.removeEventListener('abort', onAbort);
      const facts: TlsWireFacts = { completed, timedOut, bytes: tap.bytes, head: tap.head, ended: tap.ended, capped: tap.capped, ...(errorCode ? { errorCode } : {}) };
      const c = classifyTls(facts);
      const r: TlsResult = {
        outcome: c.outcome,
        ms: ms(),
        offered,
        bytesReceived: tap.bytes,
        ...(tap.head.length ? { firstBytes: tap.head.subarray(0, 32).toString('hex') } : {}),
        detail: c.detail,
        ...(c.alert ? { alert: c.alert } : {}),
        ...(errorCode ? { error: errorCode } : {}),
      };
      if (completed && sock) {
        r.version = sock.getProtocol() ?? undefined;
        const cipher = sock.getCipher();
        r.cipher = cipher?.name;
        r.cipherStandardName = cipher?.standardName;
        if (sock.authorizationError) r.authorizationError = String(sock.authorizationError);
        const raw = sock.getPeerCertificate()?.raw;
        if (raw?.length) {
          try {
            r.certificate = await certInfo(raw, o.now);
          } catch (e) {
            r.detail = `handshake completed, but the certificate could not be read (${(e as Error).message})`;
          }
        }
      }
      sock?.destroy();
      tap.destroy();
      o.stream.destroy();
      resolve(r);
    };
    // Late-safe: on a busy event loop, bytes that already arrived are counted before we call it silence.
    const cancelTimeout = lateSafeTimeout(() => void finish(false, true), o.timeoutMs);
    let cancelSilence: (() => void) | undefined;
    if (o.silence) {
      const { afterMs, onSilence } = o.silence;
      cancelSilence = lateSafeTimeout(() => { if (!done && tap.bytes === 0) onSilence(); }, afterMs);
    }
    const onAbort = () => void finish(false, true);
    if (o.signal?.aborted) queueMicrotask(onAbort);
    else o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const opts: ConnectionOptions = {
        socket: tap,
        rejectUnauthorized: false,
        minVersion: min,
        maxVersion: max,
        ...(o.ciphers ? { ciphers: o.ciphers } : {}),
        ...(o.servername ? { servername: o.servername } : {}),
      };
      sock = tls.connect(opts);
    } catch (e) {
      void finish(false, false, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
      return;
    }
    sock.once('secureConnect', () => void finish(true, false));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // Let the tap see the transport's FIN/RST first (same tick ordering is not guaranteed).
      setImmediate(() => void finish(false, false, e.code ?? e.message));
    });
    sock.once('close', () => setImmediate(() => void finish(false, false)));
  });
}

/** OpenSSL 3 allows TLS 1.0/1.1 only at security level 0; used when scanning old versions. */
export const LEGACY_CIPHERS = 'DEFAULT:@SECLEVEL=0';
