// Tests of the lab itself: topologies, xrdp configurations, PMTU black hole,
// loss, and scripted peers really behave as the product's tests will assume.
// Run: npx tsx test/lab/lab.test.ts  (as root; skips with one line otherwise)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import { connectionRequest } from '../../scripts/lib/x224.ts';
import * as assert from 'uvu/assert';
import { LAB_CLIENT, type ClientRequest, type ClientResult } from './lab-client.ts';
import { cleanupStaleLab, createTopology, run, type Topology } from './netns.ts';
import { startPeers, startSocatCloser, SSH_BANNER } from './peers.ts';
import { bin, labGate, labMissing } from './prereq.ts';
import { NEG_FAILURE, negFailure, negResponse, PROTOCOL_RDP, PROTOCOL_SSL } from './rdp-bytes.ts';
import { labCerts, startXrdp } from './xrdp.ts';

const hex = (s: string) => Buffer.from(s).toString('hex');

function netnsList(): string[] {
  return execFileSync(bin('ip'), ['netns', 'list'], { encoding: 'utf8' })
    .split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

/** Fail a test that hangs instead of hanging the whole run. */
async function bounded<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t0 = Date.now();
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: over ${ms} ms`)), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
    if (process.env.LAB_DEBUG) console.log(`[${what}: ${Date.now() - t0} ms]`);
  }
}

/** Run `fn` with a fresh topology that is destroyed whatever happens. */
async function withTopology<T>(opts: Parameters<typeof createTopology>[0], fn: (t: Topology) => Promise<T>): Promise<T> {
  const topo = await createTopology(opts);
  try {
    return await fn(topo);
  } finally {
    await topo.destroy();
  }
}

/**
 * Lazily created, shared fixture. (uvu swallows errors thrown in before()
 * hooks, so setup happens here and a failure fails every test that uses it.)
 */
function fixture<T>(make: () => Promise<T>) {
  let p: Promise<T> | undefined;
  return { get: () => (p ??= make()), started: () => p !== undefined };
}

const connectAll = (topo: Topology, reqs: ClientRequest[]) =>
  topo.call<ClientResult[]>('client', LAB_CLIENT, 'labConnectAll', [reqs]);

// Leftovers of crashed earlier runs (dead pids only; parallel runs are safe).
if (labMissing(['root', 'netns']).length === 0) {
  const removed = cleanupStaleLab();
  if (removed.length) console.log(`lab: removed leftovers of earlier runs: ${removed.join(' ')}`);
}

// ------------------------------------------------------------ topology

const topoSuite = suite('lab: topology');
if (labGate('lab: topology', ['root', 'netns', 'ping'])) {
  topoSuite('direct topology works, has no way out, and leaves nothing behind', () =>
    bounded(15_000, 'direct', async () => {
      const topo = await createTopology({ kind: 'direct' });
      const names = [topo.client.ns, topo.server.ns];
      try {
        for (const n of names) assert.ok(netnsList().includes(n), `${n} exists`);
        const ping = await topo.exec('client', [bin('ping'), '-c', '1', '-W', '2', topo.server.addr]);
        assert.is(ping.exitCode, 0, ping.stdout + ping.stderr);
        // No default route: anything outside the lab is unreachable, not sent.
        const out = await topo.exec('client', [bin('ip'), 'route', 'get', '192.0.2.1']);
        assert.ok(out.exitCode !== 0 && /unreachable/i.test(out.stderr), out.stdout + out.stderr);
        // runNode really runs inside the namespace.
        const node = await topo.runNode('client', ['-e', 'console.log(Object.keys(require("node:os").networkInterfaces()).join(","))']);
        assert.ok(node.stdout.includes(topo.client.ifname), node.stdout + node.stderr);
        // Background processes die with the topology.
        const sleeper = topo.spawn('server', ['sleep', '60']);
        await new Promise((r) => setTimeout(r, 100));
        assert.ok(sleeper.running);
        await topo.destroy();
        assert.not.ok(sleeper.running, 'spawned process killed');
      } finally {
        await topo.destroy();
        await topo.destroy(); // idempotent
      }
      for (const n of names) assert.not.ok(netnsList().includes(n), `${n} removed`);
      // veths are created inside the namespaces; none may ever show up in the root namespace.
      const rootLinks = execFileSync(bin('ip'), ['-o', 'link', 'show'], { encoding: 'utf8' });
      assert.not.ok(rootLinks.includes(topo.client.ifname), 'no lab veth in the root namespace');
    }));

  topoSuite('routed topology: forwarding, client MTU set/read back', () =>
    bounded(15_000, 'routed', () =>
      withTopology({ kind: 'routed' }, async (topo) => {
        const ping = await topo.exec('client', [bin('ping'), '-c', '1', '-W', '2', topo.server.addr]);
        assert.is(ping.exitCode, 0, ping.stdout + ping.stderr);
        assert.is(await topo.getMtu('client'), 1500);
        await topo.setMtu('client', 1400);
        assert.is(await topo.getMtu('client'), 1400);
      })));

  topoSuite('failed creation removes what was created', () =>
    bounded(15_000, 'partial', async () => {
      const mine = () => netnsList().filter((n) => n.startsWith(`rfx-${process.pid}-`));
      const before = mine();
      // MTU 10 is rejected by the kernel after the namespaces exist.
      let err: unknown;
      try {
        await createTopology({ kind: 'routed', clientLinkMtu: 10 });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof Error, 'creation failed');
      assert.equal(mine(), before);
    }));

  topoSuite('cleanupStaleLab removes namespaces of dead runs only', () =>
    bounded(15_000, 'stale', () =>
      withTopology({ kind: 'direct' }, async (topo) => {
        // pid 4194304 is above Linux' pid_max limit, so it can never be alive.
        const fake = `rfx-4194304-${randomBytes(3).toString('hex')}-c`;
        await run([bin('ip'), 'netns', 'add', fake], { check: true });
        assert.ok(netnsList().includes(fake));
        cleanupStaleLab();
        // (A lab test running in parallel may have removed it first: also fine.)
        assert.not.ok(netnsList().includes(fake), `${fake} removed`);
        assert.ok(netnsList().includes(topo.client.ns), 'live topology untouched');
      })));
}
topoSuite.run();

// ------------------------------------------------------------ xrdp

const xrdpSuite = suite('lab: xrdp');
if (labGate('lab: xrdp', ['root', 'netns', 'xrdp', 'openssl'])) {
  // One topology, one xrdp per configuration on its own port.
  const fx = fixture(async () => {
    const certs = await labCerts();
    const topo = await createTopology({ kind: 'direct' });
    const cfg = {
      negotiate: { port: 3389, securityLayer: 'negotiate', cert: certs.valid },
      tls: { port: 3390, securityLayer: 'tls', cert: certs.valid },
      rdp: { port: 3391, securityLayer: 'rdp', cert: certs.valid },
      mismatched: { port: 3392, securityLayer: 'negotiate', cert: certs.mismatched },
      expired: { port: 3393, securityLayer: 'negotiate', cert: certs.expired },
      tlsMissing: { port: 3394, securityLayer: 'tls', cert: certs.missing },
      negMissing: { port: 3395, securityLayer: 'negotiate', cert: certs.missing },
      tls12: { port: 3396, securityLayer: 'tls', cert: certs.valid, sslProtocols: 'TLSv1.2' },
    } as const;
    try {
      await Promise.all(Object.values(cfg).map((c) => startXrdp(topo, c)));
    } catch (err) {
      await topo.destroy();
      throw err;
    }
    return { topo, cfg, addr: topo.server.addr };
  });
  xrdpSuite.after(async () => {
    if (fx.started()) await (await fx.get().catch(() => undefined))?.topo.destroy();
  });

  xrdpSuite('every configuration answers as recorded in xrdp.ts', () =>
    bounded(20_000, 'xrdp', async () => {
      const { topo, cfg, addr } = await fx.get();
      const tls = (port: number, protocols: number | null = 0x0b): ClientRequest => ({ addr, port, protocols, tls: true, readMs: 2000, tlsTimeoutMs: 3000 });
      const plain = (port: number, protocols: number | null): ClientRequest => ({ addr, port, protocols, readMs: 700 });
      const [neg, tlsOk, rdp, mism, expired, tlsMissing, negMissing, tls12, tlsWantsRdp, tlsLegacy] = await connectAll(topo, [
        tls(cfg.negotiate.port), tls(cfg.tls.port), tls(cfg.rdp.port), tls(cfg.mismatched.port), tls(cfg.expired.port),
        tls(cfg.tlsMissing.port), tls(cfg.negMissing.port), tls(cfg.tls12.port),
        plain(cfg.tls.port, PROTOCOL_RDP), plain(cfg.tls.port, null),
      ]);
      const SSL_RSP = negResponse(PROTOCOL_SSL).toString('hex');

      assert.is(neg.received, SSL_RSP);
      assert.ok(neg.tls?.ok, JSON.stringify(neg));
      assert.is(neg.tls?.authError, 'DEPTH_ZERO_SELF_SIGNED_CERT');

      assert.is(tlsOk.received, SSL_RSP);
      assert.ok(tlsOk.tls?.ok, JSON.stringify(tlsOk));

      // security_layer=rdp: selects standard RDP security, no failure code.
      assert.is(rdp.received, negResponse(PROTOCOL_RDP).toString('hex'));
      assert.is(rdp.tls, undefined);

      // Mismatched key: SSL selected, then MCS disconnect + FIN instead of TLS.
      assert.is(mism.received, SSL_RSP);
      assert.not.ok(mism.tls?.ok, JSON.stringify(mism));
      assert.ok(['ERR_SSL_WRONG_VERSION_NUMBER', 'ECONNRESET'].includes(mism.tls?.error ?? ''), JSON.stringify(mism));

      assert.ok(expired.tls?.ok, JSON.stringify(expired));
      assert.is(expired.tls?.authError, 'CERT_HAS_EXPIRED');
      assert.is(expired.tls?.validTo, 'Feb  1 00:00:00 2020 GMT');

      assert.equal(tlsMissing.neg, { type: 'failure', code: NEG_FAILURE.SSL_CERT_NOT_ON_SERVER });
      assert.is(tlsMissing.end, 'fin');
      assert.equal(negMissing.neg, { type: 'response', flags: 1, selected: PROTOCOL_RDP });

      assert.ok(tls12.tls?.ok, JSON.stringify(tls12));
      assert.is(tls12.tls?.protocol, 'TLSv1.2');

      assert.is(tlsWantsRdp.received, negFailure(NEG_FAILURE.SSL_REQUIRED_BY_SERVER).toString('hex') + '0300000902f0802180');
      assert.is(tlsWantsRdp.end, 'fin');
      assert.equal(tlsLegacy.neg, { type: 'none' });
      assert.is(tlsLegacy.end, 'fin');
    }));
}
xrdpSuite.run();

// ------------------------------------------------------------ path MTU

const pmtuSuite = suite('lab: path MTU');
if (labGate('lab: path MTU', ['root', 'netns', 'iptables', 'xrdp', 'openssl'])) {
  const req = (addr: string): ClientRequest => ({ addr, port: 3389, tls: true, tlsTimeoutMs: 2000 });

  pmtuSuite('black hole stalls the large TLS flight; client MTU = path MTU fixes it', () =>
    bounded(20_000, 'black hole', async () => {
      const certs = await labCerts();
      await withTopology({ kind: 'routed', pathMtu: 1400, pmtuBlackhole: true }, async (topo) => {
        await startXrdp(topo, { cert: certs.large });
        const [stalled] = await connectAll(topo, [req(topo.server.addr)]);
        assert.is(stalled.neg?.type, 'response', 'small X.224 exchange still works');
        assert.ok(stalled.tls?.timedOut, JSON.stringify(stalled));

        await topo.setMtu('client', 1400);
        const [ok] = await connectAll(topo, [req(topo.server.addr)]);
        assert.ok(ok.tls?.ok, JSON.stringify(ok));
        assert.ok((ok.tls?.certBytes ?? 0) > 6000, `large cert: ${ok.tls?.certBytes} bytes`);
      });
    }));

  pmtuSuite('same path with ICMP allowed: PMTU discovery copes at MTU 1500', () =>
    bounded(20_000, 'pmtud', async () => {
      const certs = await labCerts();
      await withTopology({ kind: 'routed', pathMtu: 1400 }, async (topo) => {
        await startXrdp(topo, { cert: certs.large });
        const [ok] = await connectAll(topo, [req(topo.server.addr)]);
        assert.ok(ok.tls?.ok, JSON.stringify(ok));
      });
    }));
}
pmtuSuite.run();

// ------------------------------------------------------------ loss and SYN drop

const lossSuite = suite('lab: loss');
if (labGate('lab: loss', ['root', 'netns', 'iptables', 'ping'])) {
  lossSuite('10% random loss drops about 10% of pings', () =>
    bounded(15_000, 'loss', () =>
      withTopology({ kind: 'routed', lossToServer: 0.1 }, async (topo) => {
        const n = 300;
        const r = await topo.exec('client', [bin('ping'), '-q', '-n', '-c', String(n), '-i', '0.005', '-W', '1', topo.server.addr], { timeoutMs: 10_000 });
        const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? NaN);
        const lost = n - received;
        // Binomial(300, 0.1): mean 30, sd 5.2. 10..55 is about +-4 sd.
        assert.ok(lost >= 10 && lost <= 55, `lost ${lost} of ${n}\n${r.stdout}`);
      })));

  lossSuite('dropped SYNs: connect times out on that port only', () =>
    bounded(15_000, 'syn drop', () =>
      withTopology({ kind: 'routed', dropSynPorts: [3389] }, async (topo) => {
        await startPeers(topo, [{ mode: 'stall', port: 3389 }, { mode: 'stall', port: 3390 }]);
        const addr = topo.server.addr;
        const [dropped, open] = await connectAll(topo, [
          { addr, port: 3389, send: 'none', connectTimeoutMs: 1000 },
          { addr, port: 3390, send: 'none', connectTimeoutMs: 1000, readMs: 200 },
        ]);
        assert.is(dropped.connected, false);
        assert.is(dropped.error, 'ETIMEDOUT');
        assert.is(open.connected, true);
      })));
}
lossSuite.run();

// ------------------------------------------------------------ scripted peers

const peerSuite = suite('lab: peers');
if (labGate('lab: peers', ['root', 'netns', 'socat'])) {
  peerSuite('every peer behaves as intended', () =>
    bounded(30_000, 'peers', () =>
      withTopology({ kind: 'direct' }, async (topo) => {
        const failures = [1, 2, 3, 4, 5, 6];
        await startPeers(topo, [
          { mode: 'close', port: 4001 },
          { mode: 'reset', port: 4002 },
          { mode: 'banner', port: 4003 },
          { mode: 'http', port: 4004 },
          { mode: 'tls-alert', port: 4005 },
          { mode: 'tls-close', port: 4006 },
          { mode: 'tls-reset', port: 4007 },
          { mode: 'endless', port: 4008 },
          { mode: 'bigcert', port: 4009 },
          { mode: 'stall', port: 4010 },
          { mode: 'reply', port: 4011, hex: negResponse(PROTOCOL_SSL).toString('hex'), after: 'hold' },
          { mode: 'http-line', port: 4014 },
          ...failures.map((code) => ({ mode: 'reply' as const, port: 4100 + code, hex: negFailure(code).toString('hex') })),
        ]);
        await startSocatCloser(topo, 4020);
        const addr = topo.server.addr;
        const p = (port: number, more: Partial<ClientRequest> = {}): ClientRequest => ({ addr, port, readMs: 1000, ...more });
        const tls = (port: number) => p(port, { tls: true, tlsTimeoutMs: 1000 });
        const results = await connectAll(topo, [
          p(4001), p(4002), p(4003), p(4004), tls(4005), tls(4006), tls(4007),
          p(4008, { maxBytes: 2 * 1024 * 1024, readMs: 5000 }),
          // Raw view of bigcert: request + a fake ClientHello record, count all bytes.
          p(4009, { send: '030000130ee000000000000100080001000000' + '160301000100', maxBytes: 20e6, readMs: 8000 }),
          tls(4009),
          p(4010, { readMs: 300 }),
          tls(4011),
          p(4020),
          // A request without a line end, then one with the mstshash cookie line.
          p(4014, { send: connectionRequest(0x0b, null).toString('hex'), readMs: 300 }),
          p(4014, { send: connectionRequest(0x0b).toString('hex') }),
          ...failures.map((code) => p(4100 + code)),
        ]);
        const [close, reset, banner, http, alert, tlsClose, tlsReset, endless, bigRaw, bigTls, stall, hold, socat, httpNoLine, httpLine, ...negs] = results;
        const show = (r: ClientResult) => JSON.stringify(r);
        if (process.env.LAB_DEBUG === 'verbose') for (const r of results) console.log(show(r));

        assert.ok(close.connected && close.end === 'fin' && close.receivedBytes === 0, show(close));
        // An RST right after accept can beat libuv's connect callback: Node
        // then reports ECONNRESET as a connect error (connected stays false).
        assert.ok(reset.end === 'reset' && reset.error === 'ECONNRESET', show(reset));
        assert.ok(socat.connected && socat.end === 'fin' && socat.receivedBytes === 0, show(socat));
        assert.is(banner.received, hex(SSH_BANNER), show(banner));
        assert.is(banner.end, 'fin');
        assert.ok(Buffer.from(http.received, 'hex').toString().startsWith('HTTP/1.1 400 '), show(http));
        assert.is(http.end, 'fin');
        assert.ok(httpNoLine.connected && httpNoLine.end === 'timeout' && httpNoLine.receivedBytes === 0, show(httpNoLine));
        assert.ok(Buffer.from(httpLine.received, 'hex').toString().startsWith('HTTP/1.1 400 '), show(httpLine));
        assert.is(alert.tls?.error, 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', show(alert));
        assert.ok(tlsClose.tls && !tlsClose.tls.ok && !tlsClose.tls.timedOut, show(tlsClose));
        assert.is(tlsReset.tls?.error, 'ECONNRESET', show(tlsReset));
        assert.ok(endless.end === 'maxbytes' && endless.receivedBytes >= 2 * 1024 * 1024, show(endless));
        assert.is(bigRaw.end, 'fin', show(bigRaw));
        assert.is(bigRaw.receivedBytes, 19 + 10 * 1024 * 1024);
        assert.ok(bigTls.tls && !bigTls.tls.ok && !bigTls.tls.timedOut, show(bigTls));
        assert.ok(stall.connected && stall.end === 'timeout' && stall.receivedBytes === 0, show(stall));
        assert.ok(hold.tls?.timedOut, show(hold));
        failures.forEach((code, i) => assert.equal(negs[i].neg, { type: 'failure', code }, show(negs[i])));
      })));
}
peerSuite.run();
