// Byte builders for the start of an RDP connection ([MS-RDPBCGR] 2.2.1.1/2.2.1.2),
// shared by the scripted peers and the lab's test client. No node imports, so
// it can be used from any side.

export const PROTOCOL_RDP = 0x0;
export const PROTOCOL_SSL = 0x1;
export const PROTOCOL_HYBRID = 0x2;
export const PROTOCOL_HYBRID_EX = 0x8;

/** RDP_NEG_FAILURE failureCode values. */
export const NEG_FAILURE = {
  SSL_REQUIRED_BY_SERVER: 1,
  SSL_NOT_ALLOWED_BY_SERVER: 2,
  SSL_CERT_NOT_ON_SERVER: 3,
  INCONSISTENT_FLAGS: 4,
  HYBRID_REQUIRED_BY_SERVER: 5,
  SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER: 6,
} as const;

/** TPKT + X.224 Connection Request (+ RDP_NEG_REQ unless protocols is null). */
export function connectionRequest(protocols: number | null = PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX): Buffer {
  if (protocols === null) return Buffer.from('0300000b06e00000000000', 'hex');
  const b = Buffer.from('030000130ee000000000000100080000000000', 'hex');
  b.writeUInt32LE(protocols >>> 0, 15);
  return b;
}

/** X.224 Connection Confirm carrying an 8-byte negotiation structure (or none). */
function connectionConfirm(neg: Buffer | null): Buffer {
  const body = Buffer.concat([Buffer.from([0x00, 0x00, 0x12, 0x34, 0x00]), neg ?? Buffer.alloc(0)]);
  const x224 = Buffer.concat([Buffer.from([body.length + 1, 0xd0]), body]);
  const tpkt = Buffer.from([0x03, 0x00, 0x00, 0x00]);
  tpkt.writeUInt16BE(4 + x224.length, 2);
  return Buffer.concat([tpkt, x224]);
}

/** Connection Confirm with RDP_NEG_RSP selecting `selected` (flags e.g. 0x01 EXTENDED_CLIENT_DATA_SUPPORTED). */
export function negResponse(selected: number, flags = 0x01): Buffer {
  const neg = Buffer.from([0x02, flags, 0x08, 0x00, 0, 0, 0, 0]);
  neg.writeUInt32LE(selected >>> 0, 4);
  return connectionConfirm(neg);
}

/** Connection Confirm with RDP_NEG_FAILURE failureCode `code`. */
export function negFailure(code: number): Buffer {
  const neg = Buffer.from([0x03, 0x00, 0x08, 0x00, 0, 0, 0, 0]);
  neg.writeUInt32LE(code >>> 0, 4);
  return connectionConfirm(neg);
}

/** Connection Confirm without negotiation data (legacy server). */
export function legacyConfirm(): Buffer {
  return connectionConfirm(null);
}

/** What xrdp sends before closing on error: TPKT + X.224 DT + MCS DisconnectProviderUltimatum. */
export const MCS_DISCONNECT_ULTIMATUM = Buffer.from('0300000902f0802180', 'hex');

/** TLS alert record: fatal handshake_failure(40), TLS 1.2 record version. */
export const TLS_ALERT_HANDSHAKE_FAILURE = Buffer.from('15030300020228', 'hex');

export type Negotiation =
  | { type: 'response'; flags: number; selected: number }
  | { type: 'failure'; code: number }
  | { type: 'none' };

/** Parse a complete Connection Confirm TPKT; null if it is not one. */
export function parseConfirm(b: Buffer): Negotiation | null {
  if (b.length < 11 || b[0] !== 0x03 || b[5] !== 0xd0 || b.readUInt16BE(2) > b.length) return null;
  if (b.readUInt16BE(2) < 19) return { type: 'none' };
  if (b[11] === 0x02) return { type: 'response', flags: b[12], selected: b.readUInt32LE(15) };
  if (b[11] === 0x03) return { type: 'failure', code: b.readUInt32LE(15) };
  return null;
}
