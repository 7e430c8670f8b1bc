// The first exchange of RDP (MS-RDPBCGR 2.2.1.1 / 2.2.1.2): the X.224 Connection Request carrying
// RDP_NEG_REQ, and the decoding of the Connection Confirm. Pure functions plus one bounded reader;
// used by probe-rdp (diagnosis) and test-vpn-latency (application round trip).
import type { Duplex } from 'node:stream';
import { lateSafeTimeout } from './tcp.ts';

/** requestedProtocols / selectedProtocol flags (MS-RDPBCGR 2.2.1.1.1). */
export const PROTOCOL = { RDP: 0x0, SSL: 0x1, HYBRID: 0x2, RDSTLS: 0x4, HYBRID_EX: 0x8, RDSAAD: 0x10 } as const;

/** RDP_NEG_FAILURE failureCode names (MS-RDPBCGR 2.2.1.2.2). */
export const FAILURE_CODES: Record<number, string> = {
  1: 'SSL_REQUIRED_BY_SERVER',
  2: 'SSL_NOT_ALLOWED_BY_SERVER',
  3: 'SSL_CERT_NOT_ON_SERVER',
  4: 'INCONSISTENT_FLAGS',
  5: 'HYBRID_REQUIRED_BY_SERVER',
  6: 'SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER',
};

/** What each failure code means, in the words of MS-RDPBCGR 2.2.1.2.2 (shortened). */
export const FAILURE_MEANINGS: Record<number, string> = {
  1: 'the server requires Enhanced RDP Security (TLS or CredSSP)',
  2: 'the server only allows Standard RDP Security, not TLS',
  3: 'the server has no valid authentication certificate',
  4: 'the server considers the flags of the request inconsistent',
  5: 'the server requires CredSSP (Network Level Authentication)',
  6: 'the server requires TLS with client certificate authentication',
};

/** Display form of a protocol mask, e.g. "SSL|HYBRID|HYBRID_EX" or "RDP". */
export function protocolLabel(p: number): string {
  return protocolNames(p).join('|') || `0x${p.toString(16)}`;
}

export function protocolNames(p: number): string[] {
  if (p === 0) return ['RDP'];
  return Object.entries(PROTOCOL).filter(([, v]) => v && (p & v) === v).map(([k]) => k);
}

/**
 * The routing cookie every request carries, as mstsc sends one ("Cookie: mstshash=USER\r\n",
 * MS-RDPBCGR 2.2.1.1). It is also what tells a hung RDP listener from a service that is not RDP:
 * a line-based service (HTTP, SMTP, Redis...) waits for a line end and then answers it (HTTP: 400
 * Bad Request), where a listener that accepts and never reads stays silent. No user is named.
 */
export const COOKIE = 'rdpfix';

/**
 * TPKT (4) + X.224 CR (7) + "Cookie: mstshash=COOKIE\r\n" + RDP_NEG_REQ (8): 44 bytes with the
 * default cookie, 19 without one (cookie null).
 */
export function connectionRequest(requestedProtocols: number, cookie: string | null = COOKIE): Buffer {
  if (cookie !== null && !/^[\x21-\x7e]{1,64}$/.test(cookie)) throw new Error(`invalid routing cookie ${JSON.stringify(cookie)}`);
  const line = cookie === null ? Buffer.alloc(0) : Buffer.from(`Cookie: mstshash=${cookie}\r\n`, 'latin1');
  const len = 19 + line.length;
  const b = Buffer.alloc(len);
  b.writeUInt8(3, 0); // TPKT version
  b.writeUInt8(0, 1);
  b.writeUInt16BE(len, 2); // TPKT length
  b.writeUInt8(len - 5, 4); // X.224 length indicator: 6 + cookie + 8
  b.writeUInt8(0xe0, 5); // CR TPDU, CDT 0
  b.writeUInt16BE(0, 6); // DST-REF
  b.writeUInt16BE(0, 8); // SRC-REF
  b.writeUInt8(0, 10); // class 0
  line.copy(b, 11);
  const neg = 11 + line.length;
  b.writeUInt8(0x01, neg); // TYPE_RDP_NEG_REQ
  b.writeUInt8(0, neg + 1); // flags
  b.writeUInt16LE(8, neg + 2);
  b.writeUInt32LE(requestedProtocols >>> 0, neg + 4);
  return b;
}

/** A Connection Confirm is 11 bytes without negotiation data, 19 with; allow a little slack. */
export const MAX_CONFIRM_BYTES = 64;

export type Confirm =
  | { kind: 'incomplete' }
  | { kind: 'response'; selectedProtocol: number; protocols: string[]; flags: number }
  | { kind: 'failure'; code: number; name: string }
  | { kind: 'no-negotiation' }
  | { kind: 'not-x224'; reason: string; preview: string };

/** Printable preview of unexpected bytes ("SSH-2.0-…" or hex). */
export function preview(buf: Buffer, max = 32): string {
  const s = buf.subarray(0, max);
  const text = s.toString('latin1');
  return /^[\x20-\x7e\r\n\t]+$/.test(text) ? JSON.stringify(text) : s.toString('hex');
}

/** Decode what the server sent in answer to our Connection Request. Never throws. */
export function parseConfirm(buf: Buffer): Confirm {
  const bad = (reason: string): Confirm => ({ kind: 'not-x224', reason, preview: preview(buf) });
  if (buf.length === 0) return { kind: 'incomplete' };
  if (buf[0] !== 3) return bad('not a TPKT header (first byte is not 3)');
  if (buf.length >= 2 && buf[1] !== 0) return bad('TPKT reserved byte is not 0');
  if (buf.length < 4) return { kind: 'incomplete' };
  const len = buf.readUInt16BE(2);
  if (len < 11) return bad(`TPKT length ${len} is too short for a Connection Confirm`);
  if (len > MAX_CONFIRM_BYTES) return bad(`TPKT length ${len} is larger than any Connection Confirm`);
  if (buf.length < len) return { kind: 'incomplete' };
  const li = buf[4]!;
  const code = buf[5]! & 0xf0;
  if (code !== 0xd0) return bad(`X.224 TPDU code 0x${code.toString(16)} is not a Connection Confirm (0xd0)`);
  if (li + 5 !== len) return bad(`X.224 length indicator ${li} does not match TPKT length ${len}`);
  if (len === 11) return { kind: 'no-negotiation' };
  if (len < 19) return bad(`negotiation data of ${len - 11} bytes is too short`);
  const type = buf[11]!;
  const flags = buf[12]!;
  const negLen = buf.readUInt16LE(13);
  if (negLen !== 8) return bad(`negotiation structure length ${negLen} is not 8`);
  const value = buf.readUInt32LE(15);
  if (type === 0x02) return { kind: 'response', selectedProtocol: value, protocols: protocolNames(value), flags };
  if (type === 0x03) return { kind: 'failure', code: value, name: FAILURE_CODES[value] ?? `UNKNOWN_FAILURE_${value}` };
  return bad(`negotiation type 0x${type.toString(16)} is neither RDP_NEG_RSP nor RDP_NEG_FAILURE`);
}

export type ConfirmRead =
  | {
      outcome: 'confirm';
      confirm: Exclude<Confirm, { kind: 'incomplete' | 'not-x224' }>;
      ms: number;
      bytes: number;
      /** Hex of bytes that arrived after the confirm in the same read (e.g. xrdp's MCS disconnect). */
      trailing?: string;
    }
  | { outcome: 'not-x224'; confirm: Extract<Confirm, { kind: 'not-x224' }>; ms: number; bytes: number }
  | { outcome: 'closed' | 'reset' | 'timeout'; ms: number; bytes: number; preview?: string };

/**
 * Send the Connection Request on a connected socket and read the Confirm, bounded in time and size:
 * at most MAX_CONFIRM_BYTES are looked at; more than that is cut off and classified as not X.224.
 * The socket is left open on success (TLS continues on it) and paused; bytes that arrived after
 * the confirm are put back into the stream (unshift) so the next reader sees them. Any Duplex works
 * (a net.Socket, or a relay through a helper process).
 */
export function exchangeConfirm(socket: Duplex, requestedProtocols: number, timeoutMs: number): Promise<ConfirmRead> {
  return new Promise((resolve) => {
    const start = performance.now();
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (r: ConfirmRead) => {
      if (done) return;
      done = true;
      cancel();
      socket.off('data', onData).off('close', onClose).off('error', onError).off('end', onEnd);
      socket.pause();
      resolve(r);
    };
    const ms = () => Math.round((performance.now() - start) * 100) / 100;
    const onData = (d: Buffer) => {
      // Only the first MAX_CONFIRM_BYTES + 1 bytes are ever parsed (an endless sender is cut off at
      // its first chunk); the rest of this chunk is kept only to hand it back after a confirm.
      const all = buf.length ? Buffer.concat([buf, d]) : d;
      buf = all.subarray(0, MAX_CONFIRM_BYTES + 1);
      const c = parseConfirm(buf);
      if (c.kind === 'incomplete') {
        if (buf.length > MAX_CONFIRM_BYTES) finish({ outcome: 'not-x224', confirm: { kind: 'not-x224', reason: 'oversized answer', preview: preview(buf) }, ms: ms(), bytes: buf.length });
        else buf = Buffer.from(buf); // do not pin a large chunk while waiting for more
        return;
      }
      if (c.kind === 'not-x224') return finish({ outcome: 'not-x224', confirm: c, ms: ms(), bytes: buf.length });
      // parseConfirm only completes once the whole TPKT is in, so its length is known and in range.
      const len = buf.readUInt16BE(2);
      const rest = all.subarray(len);
      finish({ outcome: 'confirm', confirm: c, ms: ms(), bytes: len, ...(rest.length ? { trailing: rest.subarray(0, 64).toString('hex') } : {}) });
      if (rest.length) socket.unshift(rest);
    };
    const partial = () => (buf.length ? { preview: preview(buf) } : {});
    const onEnd = () => finish({ outcome: 'closed', ms: ms(), bytes: buf.length, ...partial() });
    const onClose = () => finish({ outcome: 'closed', ms: ms(), bytes: buf.length, ...partial() });
    const onError = (e: NodeJS.ErrnoException) =>
      finish({ outcome: e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'closed', ms: ms(), bytes: buf.length, ...partial() });
    const cancel = lateSafeTimeout(() => finish({ outcome: 'timeout', ms: ms(), bytes: buf.length, ...partial() }), timeoutMs);
    socket.on('data', onData).on('end', onEnd).on('close', onClose).on('error', onError);
    socket.resume();
    socket.write(connectionRequest(requestedProtocols));
  });
}
