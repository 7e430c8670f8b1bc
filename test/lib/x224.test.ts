// X.224 Connection Request bytes, Connection Confirm decoding (recorded xrdp bytes, every failure
// code, legacy, non-RDP answers), a fuzz of the decoder with random, truncated and mutated input,
// and the bounded reader over an in-memory stream (no network).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Duplex, PassThrough } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  connectionRequest, exchangeConfirm, FAILURE_CODES, FAILURE_MEANINGS, MAX_CONFIRM_BYTES, parseConfirm, PROTOCOL,
  protocolLabel, protocolNames, type Confirm,
} from '../../scripts/lib/x224.ts';

const fixtures = JSON.parse(readFileSync(new URL('../fixtures/probe-rdp/xrdp-wire.json', import.meta.url), 'utf8')) as {
  answers: Record<string, { received: string; end: string }>;
};
const hex = (s: string) => Buffer.from(s, 'hex');
/** A Connection Confirm as xrdp frames it (dst-ref 0, src-ref 0x1234), with an 8-byte negotiation structure. */
const confirm = (type: number, value: number, flags = 0) => {
  const b = hex('030000130ed00000123400' + '0000080000000000');
  b[11] = type;
  b[12] = flags;
  b.writeUInt32LE(value, 15);
  return b;
};

// ---

const request = suite('connectionRequest');

request('is TPKT + X.224 CR + the mstshash cookie line + RDP_NEG_REQ, byte for byte (MS-RDPBCGR 2.2.1.1)', () => {
  const cookie = Buffer.from('Cookie: mstshash=rdpfix\r\n', 'latin1').toString('hex');
  assert.is(connectionRequest(PROTOCOL.SSL | PROTOCOL.HYBRID | PROTOCOL.HYBRID_EX).toString('hex'), `0300002c27e00000000000${cookie}010008000b000000`);
  assert.is(connectionRequest(0).toString('hex'), `0300002c27e00000000000${cookie}0100080000000000`);
  assert.is(connectionRequest(0x0b, null).toString('hex'), '030000130ee00000000000010008000b000000');
  assert.throws(() => connectionRequest(0x0b, 'a\r\nb'), /invalid routing cookie/);
});

request('protocol names and labels', () => {
  assert.equal(protocolNames(0x0b), ['SSL', 'HYBRID', 'HYBRID_EX']);
  assert.equal(protocolNames(0), ['RDP']);
  assert.is(protocolLabel(0x01), 'SSL');
  assert.is(protocolLabel(0x10), 'RDSAAD');
});

request.run();

// ---

const decode = suite('parseConfirm: recorded and constructed answers');

decode('decodes every answer recorded from xrdp', () => {
  const a = fixtures.answers;
  const first = (k: string) => parseConfirm(hex(a[k]!.received));
  assert.equal(first('negotiate req=0x0b'), { kind: 'response', selectedProtocol: 1, protocols: ['SSL'], flags: 1 });
  assert.equal(first('rdp req=0x0b'), { kind: 'response', selectedProtocol: 0, protocols: ['RDP'], flags: 1 });
  assert.equal(first('negotiate req=legacy'), { kind: 'no-negotiation' });
  // Failure answers are followed by the MCS disconnect; the decoder looks at the first TPKT only.
  assert.equal(first('tls req=0x00'), { kind: 'failure', code: 1, name: 'SSL_REQUIRED_BY_SERVER' });
  assert.equal(first('tlsMissingCert req=0x0b'), { kind: 'failure', code: 3, name: 'SSL_CERT_NOT_ON_SERVER' });
});

decode('names all six failure codes as MS-RDPBCGR 2.2.1.2.2 does, with a meaning each', () => {
  const names = ['SSL_REQUIRED_BY_SERVER', 'SSL_NOT_ALLOWED_BY_SERVER', 'SSL_CERT_NOT_ON_SERVER', 'INCONSISTENT_FLAGS', 'HYBRID_REQUIRED_BY_SERVER', 'SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER'];
  names.forEach((name, i) => {
    assert.equal(parseConfirm(confirm(0x03, i + 1)), { kind: 'failure', code: i + 1, name });
    assert.is(FAILURE_CODES[i + 1], name);
    assert.ok(FAILURE_MEANINGS[i + 1]);
  });
  assert.equal(parseConfirm(confirm(0x03, 99)), { kind: 'failure', code: 99, name: 'UNKNOWN_FAILURE_99' });
});

decode('calls non-RDP answers not-x224 with a readable preview', () => {
  const ssh = parseConfirm(Buffer.from('SSH-2.0-OpenSSH_9.2p1\r\n'));
  assert.is(ssh.kind, 'not-x224');
  assert.match((ssh as Extract<Confirm, { kind: 'not-x224' }>).preview, /^"SSH-2\.0-OpenSSH/);
  assert.is(parseConfirm(Buffer.from('HTTP/1.1 400 Bad Request\r\n')).kind, 'not-x224');
  // A TPKT that is a Data TPDU (xrdp's MCS disconnect) is not a confirm.
  assert.match((parseConfirm(hex('0300000902f0802180')) as { reason: string }).reason, /too short|not a Connection Confirm/);
  assert.match((parseConfirm(hex('0300ffff')) as { reason: string }).reason, /larger than any Connection Confirm/);
  const wrongType = confirm(0x07, 1);
  assert.match((parseConfirm(wrongType) as { reason: string }).reason, /neither RDP_NEG_RSP nor RDP_NEG_FAILURE/);
});

decode.run();

// ---

const fuzz = suite('parseConfirm: fuzz');
const KINDS = new Set(['incomplete', 'response', 'failure', 'no-negotiation', 'not-x224']);

/** Invariants every answer must satisfy, whatever the input. */
function checkInvariants(buf: Buffer, c: Confirm): void {
  assert.ok(KINDS.has(c.kind), `kind ${c.kind}`);
  if (c.kind === 'response' || c.kind === 'failure' || c.kind === 'no-negotiation') {
    // Only a complete, self-consistent TPKT + CC can decode to an answer.
    assert.is(buf[0], 3);
    assert.is(buf[1], 0);
    const len = buf.readUInt16BE(2);
    assert.ok(len <= buf.length && len >= 11 && len <= MAX_CONFIRM_BYTES, `len ${len}`);
    assert.is(buf[5]! & 0xf0, 0xd0);
  }
  if (c.kind === 'not-x224') assert.type(c.preview, 'string');
}

fuzz('20,000 random buffers: never throws, always a known kind, answers only from consistent TPKTs', () => {
  for (let i = 0; i < 20_000; i++) {
    const len = i % 97;
    const buf = randomBytes(len);
    // Bias half of them towards a plausible header so the deeper branches are reached.
    if (i % 2 && len >= 6) buf.set([3, 0, 0, Math.min(len, 19 + (i % 5)), len - 5, 0xd0], 0);
    checkInvariants(buf, parseConfirm(buf));
  }
});

fuzz('every truncation of a valid confirm is incomplete, never a wrong answer', () => {
  const all = [...Object.values(fixtures.answers).map((a) => hex(a.received)), confirm(0x02, 0x08, 0x1f), confirm(0x03, 5)];
  for (const full of all) {
    const len = full.readUInt16BE(2);
    for (let cut = 0; cut < len; cut++) assert.is(parseConfirm(full.subarray(0, cut)).kind, 'incomplete', `${full.toString('hex')} cut at ${cut}`);
    assert.is.not(parseConfirm(full.subarray(0, len)).kind, 'incomplete');
  }
});

fuzz('every single-byte mutation of a valid confirm still gives a well-formed result', () => {
  const base = confirm(0x02, 0x01, 0x01);
  for (let pos = 0; pos < base.length; pos++) {
    for (let v = 0; v < 256; v++) {
      const b = Buffer.from(base);
      b[pos] = v;
      checkInvariants(b, parseConfirm(b));
    }
  }
});

fuzz.run();

// ---

const reader = suite('exchangeConfirm (in-memory stream)');

/** Two connected in-memory streams: what one writes, the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

/** The server side: read the request, then run `answer`. */
function serve(server: Duplex, answer: (req: Buffer) => void): Promise<Buffer> {
  return new Promise((resolve) => {
    server.once('data', (req: Buffer) => {
      answer(req);
      resolve(req);
    });
  });
}

reader('sends the request and decodes a confirm that arrives one byte at a time', async () => {
  const [client, server] = duplexPair();
  const answer = confirm(0x02, 0x02, 0x1f);
  const sent = serve(server, () => {
    let i = 0;
    const drip = () => {
      if (i < answer.length) {
        server.write(answer.subarray(i, ++i));
        setTimeout(drip, 1);
      }
    };
    drip();
  });
  const r = await exchangeConfirm(client, 0x0b, 2000);
  assert.is((await sent).toString('hex'), connectionRequest(0x0b).toString('hex'));
  assert.is(r.outcome, 'confirm');
  if (r.outcome === 'confirm') assert.equal(r.confirm, { kind: 'response', selectedProtocol: 2, protocols: ['HYBRID'], flags: 0x1f });
});

reader('reports the bytes after the confirm and leaves them in the stream for the next reader', async () => {
  const [client, server] = duplexPair();
  const recorded = hex(fixtures.answers['tlsMissingCert req=0x0b']!.received);
  void serve(server, () => server.write(recorded));
  const r = await exchangeConfirm(client, 0x0b, 2000);
  assert.is(r.outcome, 'confirm');
  if (r.outcome !== 'confirm') return;
  assert.is(r.trailing, '0300000902f0802180');
  assert.is(r.bytes, 19);
  const next = await new Promise<Buffer>((resolve) => { client.once('data', resolve); client.resume(); });
  assert.is(next.toString('hex'), '0300000902f0802180');
});

reader('cuts an endless sender off after MAX_CONFIRM_BYTES and calls it not X.224', async () => {
  const [client, server] = duplexPair();
  void serve(server, () => { for (let i = 0; i < 64; i++) server.write(Buffer.alloc(16 * 1024, 0x03)); });
  const r = await exchangeConfirm(client, 0x0b, 2000);
  assert.is(r.outcome, 'not-x224');
  assert.ok(r.bytes <= MAX_CONFIRM_BYTES + 1, `looked at ${r.bytes} bytes`);
});

reader('a close before any answer is "closed", silence is "timeout"', async () => {
  const [c1, s1] = duplexPair();
  void serve(s1, () => s1.end());
  assert.is((await exchangeConfirm(c1, 0x0b, 2000)).outcome, 'closed');
  const [c2] = duplexPair();
  const t = await exchangeConfirm(c2, 0x0b, 50);
  assert.is(t.outcome, 'timeout');
  assert.is(t.bytes, 0);
});

reader('a reset (ECONNRESET) is "reset", with what arrived before it', async () => {
  const [client, server] = duplexPair();
  server.on('error', () => { /* the pair shares its streams: the server end sees the reset too */ });
  void serve(server, () => {
    server.write(hex('0300'));
    setTimeout(() => client.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), 5);
  });
  const r = await exchangeConfirm(client, 0x0b, 2000);
  assert.is(r.outcome, 'reset');
  assert.is(r.bytes, 2);
});

reader.run();
