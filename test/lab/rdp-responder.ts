// A light RDP-over-TLS responder for many addresses at once, with the wire behaviour of a healthy
// xrdp (test/lab/xrdp.ts): any X.224 Connection Request is answered with xrdp's own Connection
// Confirm selecting SSL (03 00 00 13 0e d0 00 00 12 34 00 02 01 08 00 01 00 00 00), then a real TLS
// handshake with the given certificate. No fork per connection, so a fleet of 200 hosts with 64
// diagnosed at once does not saturate a small lab machine (xrdp forks for every connection, which
// at that rate starves the lab's own packet processing; see test/lab/fleet.ts).
//
// Optionally "busy": listen backlog 1 and an event loop that blocks for busyMs of every periodMs.
// While blocked, handshaken connections wait in the kernel's accept queue (2 entries for backlog 1)
// and further SYNs are dropped (TcpExtListenOverflows), which the client sees as a SYN retransmit
// after 1 s, exactly like packet loss: what a starved xrdp (backlog 2) does on a loaded machine.
//
// Standalone, run inside a lab namespace (prints "ready" once every listener listens):
//   node --import tsx rdp-responder.ts '<json ResponderConfig>'
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HostName, Spawned, Topology } from './netns.ts';
import { negResponse, PROTOCOL_SSL } from './rdp-bytes.ts';
import type { CertPair } from './xrdp.ts';

export interface ResponderListener {
  addr: string;
  port: number;
  cert: CertPair;
}

export interface ResponderConfig {
  listeners: ResponderListener[];
  /** Listen backlog (default 511). */
  backlog?: number;
  /** Block the event loop this long every periodMs (default: never). */
  busyMs?: number;
  periodMs?: number;
}

const SELF = fileURLToPath(import.meta.url);

/** Start a responder in a namespace (default: the server); resolves once it listens everywhere. */
export async function startResponder(topo: Topology, cfg: ResponderConfig, host: HostName = 'server'): Promise<Spawned> {
  const proc = topo.spawnNode(host, [SELF, JSON.stringify(cfg)]);
  try {
    await proc.waitForOutput(/^ready$/m, 30_000);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return proc;
}

/** The busy variant on the server's own address. */
export function startBusyServer(topo: Topology, port: number, cert: CertPair, busyMs = 150, periodMs = 400): Promise<Spawned> {
  return startResponder(topo, { listeners: [{ addr: topo.server.addr, port, cert }], backlog: 1, busyMs, periodMs });
}

async function serve(cfg: ResponderConfig): Promise<void> {
  const pems = new Map<string, { key: Buffer; cert: Buffer }>();
  const load = (c: CertPair) => {
    const k = `${c.cert}|${c.key}`;
    if (!pems.has(k)) pems.set(k, { key: readFileSync(c.key), cert: readFileSync(c.cert) });
    return pems.get(k)!;
  };
  await Promise.all(cfg.listeners.map((l) => new Promise<void>((resolve, reject) => {
    const { key, cert } = load(l.cert);
    const srv = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => {
        sock.write(negResponse(PROTOCOL_SSL));
        const t = new tls.TLSSocket(sock, { isServer: true, key, cert });
        t.on('error', () => {});
      });
    });
    srv.once('error', reject);
    srv.listen({ host: l.addr, port: l.port, backlog: cfg.backlog ?? 511 }, () => resolve());
  })));
  console.log('ready');
  if (cfg.busyMs && cfg.periodMs) {
    const busyMs = cfg.busyMs;
    setInterval(() => {
      const until = Date.now() + busyMs;
      while (Date.now() < until) { /* busy: not accepting */ }
    }, cfg.periodMs);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await serve(JSON.parse(process.argv[2]!) as ResponderConfig);
}
