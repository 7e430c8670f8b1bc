// The TLS step: alert parsing, the wire-level classification of failed handshakes (table and fuzz
// with random and truncated input), and real handshakes over in-memory streams against a Node TLS
// server or a scripted misbehaving one. The certificate details are checked against openssl's own
// reading of the same files. No network.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  alertFromErrorCode, certInfo, classifyTls, describeNonTls, looksLikeTls, parseTlsAlert, tlsHandshake, type TlsOutcome, type TlsWireFacts,
} from '../../scripts/lib/tls-probe.ts';
import { bin, labGate } from '../lab/prereq.ts';
import { labCerts, type CertPair } from '../lab/xrdp.ts';

const fixtures = JSON.parse(readFileSync(new URL('../fixtures/probe-rdp/xrdp-wire.json', import.meta.url), 'utf8')) as {
  tlsFirstBytes: Record<string, { hex: string }>;
};
const recorded = (k: string) => Buffer.from(Object.entries(fixtures.tlsFirstBytes).find(([name]) => name.startsWith(k))![1].hex, 'hex');
const OUTCOMES = new Set<TlsOutcome>(['ok', 'closed', 'reset', 'alert', 'not-tls', 'silence', 'stalled', 'oversized', 'protocol-error', 'error']);

// ---

const alerts = suite('TLS alerts');

alerts('parses the alert xrdp sends when it only speaks TLS 1.0', () => {
  assert.equal(parseTlsAlert(recorded('ssl_protocols=TLSv1')), { level: 'fatal', code: 70, name: 'protocol_version' });
  assert.equal(parseTlsAlert(Buffer.from('15030100020128', 'hex')), { level: 'warning', code: 40, name: 'handshake_failure' });
  assert.equal(parseTlsAlert(Buffer.from('150303000202fe', 'hex')), { level: 'fatal', code: 254, name: 'alert_254' });
  assert.is(parseTlsAlert(Buffer.from('1503', 'hex'))?.name, 'truncated alert');
  assert.is(parseTlsAlert(Buffer.from('16030300', 'hex')), null);
  assert.is(parseTlsAlert(Buffer.from('1504', 'hex')), null);
});

alerts('names the alert in a Node/OpenSSL error code', () => {
  assert.equal(alertFromErrorCode('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION'), { level: 'fatal', code: 70, name: 'protocol_version' });
  assert.equal(alertFromErrorCode('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE'), { level: 'fatal', code: 40, name: 'handshake_failure' });
  assert.is(alertFromErrorCode('ERR_SSL_WRONG_VERSION_NUMBER'), null);
  assert.is(alertFromErrorCode(undefined), null);
});

alerts('tells TLS records from other bytes', () => {
  assert.ok(looksLikeTls(Buffer.from('160303', 'hex')));
  assert.not.ok(looksLikeTls(recorded('mismatchedKey')));
  assert.match(describeNonTls(recorded('mismatchedKey')), /MCS Disconnect Provider Ultimatum/);
  assert.match(describeNonTls(Buffer.from('HTTP/1.1 400')), /^text "HTTP/);
});

alerts.run();

// ---

const classify = suite('classifyTls');
const facts = (f: Partial<TlsWireFacts>): TlsWireFacts => ({ completed: false, timedOut: false, bytes: 0, head: Buffer.alloc(0), ended: null, capped: false, ...f });

classify('names each way a handshake dies', () => {
  const dpum = recorded('mismatchedKey');
  const alert = recorded('ssl_protocols=TLSv1');
  const cases: [Partial<TlsWireFacts>, TlsOutcome][] = [
    [{ completed: true, bytes: 1371, head: Buffer.from('160303', 'hex') }, 'ok'],
    [{ ended: 'fin', errorCode: 'ECONNRESET' }, 'closed'],
    [{ ended: 'reset', errorCode: 'ECONNRESET' }, 'reset'],
    [{ timedOut: true }, 'silence'],
    [{ bytes: dpum.length, head: dpum, ended: 'fin', errorCode: 'ERR_SSL_WRONG_VERSION_NUMBER' }, 'not-tls'],
    [{ bytes: alert.length, head: alert, ended: 'fin', errorCode: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' }, 'alert'],
    [{ bytes: 1448, head: Buffer.from('160303005a02', 'hex'), timedOut: true }, 'stalled'],
    [{ bytes: 1448, head: Buffer.from('160303005a02', 'hex'), ended: 'fin', errorCode: 'ECONNRESET' }, 'closed'],
    [{ bytes: 1448, head: Buffer.from('160303005a02', 'hex'), ended: 'reset' }, 'reset'],
    [{ bytes: 300_000, head: Buffer.from('1603034000', 'hex'), capped: true }, 'oversized'],
    [{ bytes: 16389, head: Buffer.from('16030340000b', 'hex'), ended: 'fin', errorCode: 'ERR_SSL_UNEXPECTED_MESSAGE' }, 'protocol-error'],
  ];
  for (const [f, want] of cases) assert.is(classifyTls(facts(f)).outcome, want, JSON.stringify(f));
});

classify('fuzz: random and truncated facts always give one known outcome and a detail line', () => {
  const heads = [recorded('mismatchedKey'), recorded('ssl_protocols=TLSv1'), Buffer.from('160303005a020000560303', 'hex')];
  const codes = [undefined, 'ECONNRESET', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR', 'ERR_SSL_X', 'EPIPE'];
  for (let i = 0; i < 20_000; i++) {
    const r = Math.random;
    const src = r() < 0.5 ? randomBytes(Math.floor(r() * 40)) : heads[i % heads.length]!;
    const head = src.subarray(0, Math.floor(r() * (src.length + 1)));
    const c = classifyTls(facts({
      completed: r() < 0.1, timedOut: r() < 0.3, bytes: r() < 0.2 ? 0 : head.length + Math.floor(r() * 1e6), head,
      ended: ([null, 'fin', 'reset'] as const)[i % 3], capped: r() < 0.05, ...(r() < 0.7 ? { errorCode: codes[i % codes.length] } : {}),
    }));
    assert.ok(OUTCOMES.has(c.outcome), c.outcome);
    assert.ok(c.detail.length > 10);
    if (c.outcome === 'alert') assert.ok(c.alert);
  }
});

classify.run();

// ---

const handshake = suite('tlsHandshake over in-memory streams');

function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const a = Duplex.from({ readable: ba, writable: ab });
  const b = Duplex.from({ readable: ab, writable: ba });
  // Both ends share streams: whichever side is destroyed, the other sees it; nothing may crash.
  a.on('error', () => {});
  b.on('error', () => {});
  return [a, b];
}

/** A real TLS server on one end. */
function tlsServer(pair: CertPair, opts: tls.TlsOptions = {}): Duplex {
  const [client, server] = duplexPair();
  const s = new tls.TLSSocket(server, { isServer: true, key: readFileSync(pair.key), cert: readFileSync(pair.cert), ...opts });
  s.on('error', () => {});
  return client;
}

/** A scripted server: reads the ClientHello, then `act`. */
function scripted(act: (server: Duplex, client: Duplex) => void): Duplex {
  const [client, server] = duplexPair();
  server.once('data', () => act(server, client));
  return client;
}

const opensslThumbprint = (file: string) =>
  execFileSync(bin('openssl'), ['x509', '-noout', '-fingerprint', '-sha1', '-in', file], { encoding: 'utf8' }).split('=')[1]!.trim().replace(/:/g, '');

if (labGate('tlsHandshake over in-memory streams', ['openssl'])) {
  handshake('completes against a real TLS server and reads the certificate as Windows shows it', async () => {
    const certs = await labCerts();
    const r = await tlsHandshake({ stream: tlsServer(certs.valid), timeoutMs: 5000 });
    assert.is(r.outcome, 'ok', r.detail);
    assert.is(r.version, 'TLSv1.3');
    assert.ok(r.cipherStandardName?.startsWith('TLS_'));
    const c = r.certificate!;
    assert.is(c.subject, 'CN=rdp-lab-valid');
    assert.is(c.issuer, 'CN=rdp-lab-valid');
    assert.is(c.selfSigned, true);
    assert.is(c.keyType, 'RSA');
    assert.is(c.keyBits, 2048);
    assert.is(c.thumbprint, opensslThumbprint(certs.valid.cert));
    assert.match(c.thumbprint, /^[0-9A-F]{40}$/);
    assert.is(c.expired, false);
    assert.ok(c.daysLeft > 3000);
    assert.is(r.authorizationError, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  handshake('an expired certificate still completes, marked expired; the large one shows its size', async () => {
    const certs = await labCerts();
    const expired = await tlsHandshake({ stream: tlsServer(certs.expired), timeoutMs: 5000 });
    assert.is(expired.outcome, 'ok');
    assert.is(expired.certificate?.validTo, '2020-02-01T00:00:00.000Z');
    assert.is(expired.certificate?.expired, true);
    assert.ok(expired.certificate!.daysLeft < 0);
    // Judged by the clock we pass: in January 2020 it was valid.
    const then = await certInfo(Buffer.from(readFileSync(certs.expired.cert, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64'), new Date('2020-01-15T00:00:00Z'));
    assert.is(then.expired, false);
    assert.is(then.notYetValid, false);
    const large = await tlsHandshake({ stream: tlsServer(certs.large), timeoutMs: 5000, maxVersion: 'TLSv1.2' });
    assert.is(large.version, 'TLSv1.2');
    assert.is(large.certificate?.keyBits, 4096);
    assert.is(large.certificate?.subjectAltNameCount, 140);
    assert.is(large.certificate?.subjectAltNames.length, 5);
  });

  handshake('self-signed = issuer is subject and its own key verifies it: true for an RDP-style certificate without keyCertSign, false for a namesake signed by another key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdpfix-selfsigned-'));
    const openssl = (args: string[]) => execFileSync(bin('openssl'), args, { cwd: dir, stdio: 'pipe' });
    const der = (file: string) => Buffer.from(readFileSync(join(dir, file), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    try {
      // What Windows generates for RDP: keyUsage without keyCertSign, EKU serverAuth, not a CA.
      openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rdp.key', '-out', 'rdp.pem', '-days', '180', '-subj', '/CN=vm1',
        '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment', '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'basicConstraints=critical,CA:FALSE']);
      const rdp = await tlsHandshake({ stream: tlsServer({ cert: join(dir, 'rdp.pem'), key: join(dir, 'rdp.key') }), timeoutMs: 5000 });
      assert.is(rdp.outcome, 'ok', rdp.detail);
      assert.equal([rdp.certificate?.subject, rdp.certificate?.issuer, rdp.certificate?.selfSigned], ['CN=vm1', 'CN=vm1', true]);
      // Same subject as its issuer, but signed by a CA that happens to carry that name.
      openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '180', '-subj', '/CN=vm1']);
      openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=vm1']);
      openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '180']);
      const namesake = await certInfo(der('leaf.pem'));
      assert.equal([namesake.subject, namesake.issuer, namesake.selfSigned], ['CN=vm1', 'CN=vm1', false]);
      // Issued by another name: not self-signed either.
      openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca2.key', '-out', 'ca2.pem', '-days', '180', '-subj', '/CN=Contoso Issuing CA']);
      openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca2.pem', '-CAkey', 'ca2.key', '-CAcreateserial', '-out', 'issued.pem', '-days', '180']);
      const issued = await certInfo(der('issued.pem'));
      assert.equal([issued.issuer, issued.selfSigned], ['CN=Contoso Issuing CA', false]);
      assert.match(issued.validFrom, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO 8601');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  handshake('a TLS 1.2-only server refuses a TLS 1.3-only client with an alert', async () => {
    const certs = await labCerts();
    const r = await tlsHandshake({ stream: tlsServer(certs.valid, { maxVersion: 'TLSv1.2' }), timeoutMs: 5000, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
    assert.is(r.outcome, 'alert', r.detail);
    assert.is(r.alert?.name, 'protocol_version');
  });
}

handshake('alert, MCS disconnect, close, reset: named from the wire', async () => {
  const alert = await tlsHandshake({ stream: scripted((s) => s.end(recorded('ssl_protocols=TLSv1'))), timeoutMs: 2000 });
  assert.is(alert.outcome, 'alert');
  assert.is(alert.alert?.name, 'protocol_version');
  assert.is(alert.firstBytes, '15030300020246');

  const dpum = await tlsHandshake({ stream: scripted((s) => s.end(recorded('mismatchedKey'))), timeoutMs: 2000 });
  assert.is(dpum.outcome, 'not-tls');
  assert.match(dpum.detail, /MCS Disconnect Provider Ultimatum/);

  const closed = await tlsHandshake({ stream: scripted((s) => s.end()), timeoutMs: 2000 });
  assert.is(closed.outcome, 'closed');
  assert.is(closed.bytesReceived, 0);

  const reset = await tlsHandshake({ stream: scripted((_s, c) => c.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))), timeoutMs: 2000 });
  assert.is(reset.outcome, 'reset');
});

handshake('silence calls onSilence once and ends at the timeout; an abort ends it early', async () => {
  let calls = 0;
  const silent = await tlsHandshake({ stream: scripted(() => {}), timeoutMs: 150, silence: { afterMs: 30, onSilence: () => calls++ } });
  assert.is(silent.outcome, 'silence');
  assert.is(calls, 1);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20);
  const aborted = await tlsHandshake({ stream: scripted(() => {}), timeoutMs: 60_000, signal: ac.signal });
  assert.is(aborted.outcome, 'silence');
  assert.ok(aborted.ms < 60_000);
});

handshake('a flight that stops half-way is "stalled"; one past the byte cap is cut off', async () => {
  const stalled = await tlsHandshake({ stream: scripted((s) => s.write(Buffer.from('160303100002000ffc0303', 'hex'))), timeoutMs: 150 });
  assert.is(stalled.outcome, 'stalled');
  assert.is(stalled.bytesReceived, 11);
  const big = Buffer.alloc(8192);
  big.set([0x16, 0x03, 0x03, 0x1f, 0xfb, 0x0b, 0x7f, 0xff, 0xff]);
  const capped = await tlsHandshake({ stream: scripted((s) => s.write(big)), timeoutMs: 2000, maxBytes: 4096 });
  assert.is(capped.outcome, 'oversized');
});

handshake.run();
