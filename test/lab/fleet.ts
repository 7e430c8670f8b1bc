// A fleet of RDP hosts for fleet-mode tests and the fleet benchmark.
//
// DESIGN CHOICE: one routed topology (client, router, server namespaces) whose server namespace
// carries one address per host, instead of one namespace per host.
//   What a host is, on the wire, is its address: its own xrdp process (own listen socket, own
//   certificate, own forks), or nothing listening (the server's kernel answers RST), and its own
//   path behaviour on the router (SYNs dropped; or a smaller MTU with ICMP "fragmentation needed"
//   dropped, set per source address with policy routing). The client cannot tell this fleet from
//   200 machines. What it costs is measured in seconds less: building 200 namespaces (plus 200
//   veths on a router bridge) takes several seconds and thousands of `ip` calls; addresses and
//   routes here are a handful of `ip -batch` and `iptables` calls. What is shared: the server
//   kernel's TCP stack (no per-host PMTU cache matters here: black-holed hosts never receive the
//   ICMP, so there is nothing to learn).
// WHAT ANSWERS: by default one light responder process (rdp-responder.ts) with one listener per
//   host, answering with xrdp's own Connection Confirm bytes and a real TLS handshake. With
//   `server: 'xrdp'` every host gets its own xrdp instead (about 6 MB each). Measured on the
//   2-CPU lab machine: xrdp forks a process for every connection, and 64 hosts diagnosed at once
//   (640 connects in 200 ms) then saturate the CPUs that also run the lab's packet processing:
//   plain connects take 0.7 s (p50) instead of 0.07 s — real latency on the wire, which diagnose
//   correctly reports, but a limit of the lab, not of a fleet of real servers.
//
// Usage:
//   const fleet = await createFleet({ healthy: 100, refusing: 50, 'syn-dropped': 25, 'pmtu-blackhole': 25 });
//   try { ... fleet.hosts ... fleet.topo.runNode('client', [...]) } finally { await fleet.destroy(); }
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, type Spawned, type Topology } from './netns.ts';
import { bin } from './prereq.ts';
import { startResponder } from './rdp-responder.ts';
import { labCerts, xrdpConfig, type CertPair } from './xrdp.ts';

export type FleetKind = 'healthy' | 'refusing' | 'syn-dropped' | 'pmtu-blackhole';

/** What diagnose must say for each kind. */
export const FLEET_EXPECT: Record<FleetKind, string> = {
  healthy: 'healthy',
  refusing: 'no-listener',
  'syn-dropped': 'unreachable',
  'pmtu-blackhole': 'mtu-blackhole',
};

export interface FleetHost {
  addr: string;
  port: number;
  kind: FleetKind;
}

export interface Fleet {
  topo: Topology;
  /** In a shuffled order (kinds mixed), as a hosts file would list them. */
  hosts: FleetHost[];
  /** Path MTU of the black-holed hosts. */
  pathMtu: number;
  /** Write the hosts as a hosts file (one ADDR:PORT per line) in the topology's temp dir. */
  writeHostsFile(name?: string): string;
  destroy(): Promise<void>;
}

export interface FleetOptions {
  port?: number;
  /** Certificate of the healthy hosts (default: the valid RSA-2048 one). */
  cert?: CertPair;
  /** Certificate of the black-holed hosts (default: the large one, whose flight a 1400-byte path drops). */
  blackholeCert?: CertPair;
  pathMtu?: number;
  /** What answers on the healthy and black-holed addresses (default 'responder'; see above). */
  server?: 'responder' | 'xrdp';
}

const KINDS: FleetKind[] = ['healthy', 'pmtu-blackhole', 'refusing', 'syn-dropped'];

/** Build the fleet; on failure everything is removed. At most 250 hosts (one /24). */
export async function createFleet(counts: Partial<Record<FleetKind, number>>, o: FleetOptions = {}): Promise<Fleet> {
  const port = o.port ?? 3389;
  const pathMtu = o.pathMtu ?? 1400;
  // All xrdp, the router and the client share this machine's CPUs: RSA-4096 signatures for 100
  // healthy hosts would themselves slow the lab's packet processing (softirq) under a 64-wide
  // fleet run, and the client would rightly measure that as latency. Only the black-holed hosts
  // need the large certificate.
  const certs = await labCerts();
  const cert = o.cert ?? certs.valid;
  const holeCert = o.blackholeCert ?? certs.large;
  const total = KINDS.reduce((a, k) => a + (counts[k] ?? 0), 0);
  if (total < 1 || total > 250) throw new Error(`a fleet has 1-250 hosts, not ${total}`);

  const topo = await createTopology({ kind: 'routed' });
  try {
    const r = topo.router!;
    // A /24 for the fleet, different from the topology's own.
    const own = topo.client.addr.split('.').slice(0, 3).join('.');
    let net = own;
    while (net === own) net = `10.${100 + (randomBytes(1)[0]! % 100)}.${randomBytes(1)[0]}`;
    // Contiguous blocks per kind (filters match ranges); the host list is shuffled afterwards.
    const blocks = new Map<FleetKind, { first: number; last: number }>();
    let next = 1;
    for (const k of KINDS) {
      const n = counts[k] ?? 0;
      if (n) blocks.set(k, { first: next, last: next + n - 1 });
      next += n;
    }
    const hosts: FleetHost[] = [];
    for (const [kind, b] of blocks) for (let i = b.first; i <= b.last; i++) hosts.push({ addr: `${net}.${i}`, port, kind });

    const batch = async (host: 'client' | 'router' | 'server', lines: string[]) => {
      const res = await topo.exec(host, [bin('ip'), '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 30_000 });
      if (res.exitCode !== 0) throw new Error(`ip -batch in ${host} failed: ${res.stderr}`);
    };
    await batch('server', hosts.map((h) => `addr add ${h.addr}/32 dev ${topo.server.ifname}`));
    await batch('router', [`route add ${net}.0/24 via ${topo.server.addr} dev ${r.serverIf}`]);
    await batch('client', [`route add ${net}.0/24 via ${r.addr}`]);

    const range = (k: FleetKind) => {
      const b = blocks.get(k)!;
      return `${net}.${b.first}-${net}.${b.last}`;
    };
    if (blocks.has('syn-dropped')) {
      await topo.iptables('router', ['-A', 'FORWARD', '-m', 'iprange', '--dst-range', range('syn-dropped'), '-p', 'tcp', '--syn', '--dport', String(port), '-j', 'DROP']);
    }
    if (blocks.has('pmtu-blackhole')) {
      // Like a tunnel, in both directions: packets to these hosts, and their replies to the
      // client (chosen by source address), leave the router through routes with a smaller MTU
      // (honoured when forwarding), and "fragmentation needed" never gets out. Both directions
      // matter: Linux sends ICMP echo replies without DF, so a one-way limit would let DF pings
      // pass and hide the black hole from a ping-based check.
      const b = blocks.get('pmtu-blackhole')!;
      const cNet = `${own}.0/25`;
      const ids = Array.from({ length: b.last - b.first + 1 }, (_, i) => b.first + i);
      await batch('router', [
        `route add ${cNet} dev ${r.ifname} src ${r.addr} mtu ${pathMtu} table 100`,
        ...ids.map((i) => `rule add from ${net}.${i} table 100 priority 100`),
        ...ids.map((i) => `route add ${net}.${i}/32 via ${topo.server.addr} dev ${r.serverIf} mtu ${pathMtu}`),
      ]);
      for (const chain of ['FORWARD', 'OUTPUT']) await topo.iptables('router', ['-A', chain, '-p', 'icmp', '--icmp-type', 'fragmentation-needed', '-j', 'DROP']);
    }

    // Something that answers RDP on every host that should.
    const serving = hosts.filter((h) => h.kind === 'healthy' || h.kind === 'pmtu-blackhole');
    const certOf = (h: FleetHost) => (h.kind === 'pmtu-blackhole' ? holeCert : cert);
    if ((o.server ?? 'responder') === 'responder') {
      if (serving.length) await startResponder(topo, { listeners: serving.map((h) => ({ addr: h.addr, port, cert: certOf(h) })) });
    } else {
      const procs: Spawned[] = serving.map((h) => {
        const base = join(topo.tmpDir, `xrdp-${h.addr}`);
        const ini = xrdpConfig({ addr: h.addr, port, securityLayer: 'negotiate', cert: certOf(h), sslProtocols: 'TLSv1.2, TLSv1.3', logFile: `${base}.log` })
          // Every sample connect makes xrdp log a dozen DEBUG/ERROR lines; a fleet does not need them.
          .replace('LogLevel=DEBUG', 'LogLevel=ALWAYS');
        writeFileSync(`${base}.ini`, ini);
        return topo.spawn('server', [bin('xrdp'), '--nodaemon', '--config', `${base}.ini`]);
      });
      const t0 = Date.now();
      for (;;) {
        const ss = await topo.exec('server', [bin('ss'), '-Hltn', 'sport', '=', `:${port}`], { timeoutMs: 5000 });
        const listening = ss.stdout.split('\n').filter((l) => l.trim()).length;
        if (listening >= serving.length) break;
        const dead = procs.find((p) => !p.running);
        if (dead) throw new Error(`an xrdp of the fleet exited: ${dead.output()}`);
        if (Date.now() - t0 > 30_000) throw new Error(`only ${listening} of ${serving.length} xrdp listen after 30 s`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }

    // Mixed order, as a real inventory would be.
    for (let i = hosts.length - 1; i > 0; i--) {
      const j = randomBytes(2).readUInt16BE() % (i + 1);
      [hosts[i], hosts[j]] = [hosts[j]!, hosts[i]!];
    }
    return {
      topo,
      hosts,
      pathMtu,
      writeHostsFile(name = 'hosts.txt') {
        const file = join(topo.tmpDir, name);
        writeFileSync(file, ['# rdpfix lab fleet', ...hosts.map((h) => `${h.addr}:${h.port}   # ${h.kind}`)].join('\n') + '\n');
        return file;
      },
      destroy: () => topo.destroy(),
    };
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}
