// A healthy RDP-over-TLS server that is periodically too busy to accept: listen backlog 1, and its
// event loop blocks for `busyMs` out of every `periodMs`. While it is blocked, connections that
// complete their handshake wait in the kernel's accept queue (2 entries for backlog 1); further
// SYNs are dropped (TcpExtListenOverflows) and the client retransmits them after 1 s — on the wire
// exactly like packet loss. This is what a starved xrdp (backlog 2) does on a loaded machine, made
// deterministic, so diagnose's burst-versus-paced re-check can be tested.
//
// Standalone, run inside a lab namespace:
//   node --import tsx busy-server.ts '{"addr":"10.1.2.3","port":3389,"cert":"/..pem","key":"/..key","busyMs":150,"periodMs":400}'
// Prints "ready" once listening. startBusyServer() below does this from a test.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Spawned, Topology } from './netns.ts';
import { negResponse, PROTOCOL_SSL } from './rdp-bytes.ts';
import type { CertPair } from './xrdp.ts';

export interface BusyServerConfig {
  addr: string;
  port: number;
  cert: string;
  key: string;
  busyMs: number;
  periodMs: number;
}

const SELF = fileURLToPath(import.meta.url);

/** Start the busy server on the server host; resolves once it listens. */
export async function startBusyServer(topo: Topology, port: number, cert: CertPair, busyMs = 150, periodMs = 400): Promise<Spawned> {
  const cfg: BusyServerConfig = { addr: topo.server.addr, port, cert: cert.cert, key: cert.key, busyMs, periodMs };
  const proc = topo.spawnNode('server', [SELF, JSON.stringify(cfg)]);
  try {
    await proc.waitForOutput(/^ready$/m, 10_000);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return proc;
}

function serve(cfg: BusyServerConfig): void {
  const key = readFileSync(cfg.key);
  const cert = readFileSync(cfg.cert);
  const srv = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () => {
      // Any X.224 request: select SSL, then a real TLS handshake.
      sock.write(negResponse(PROTOCOL_SSL));
      const t = new tls.TLSSocket(sock, { isServer: true, key, cert });
      t.on('error', () => {});
    });
  });
  srv.listen({ host: cfg.addr, port: cfg.port, backlog: 1 }, () => {
    console.log('ready');
    setInterval(() => {
      const until = Date.now() + cfg.busyMs;
      while (Date.now() < until) { /* busy: not accepting */ }
    }, cfg.periodMs);
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  serve(JSON.parse(process.argv[2]!) as BusyServerConfig);
}
