// A fleet of thousands of RDP hosts in one routed topology, for the fleet-scale lab test and
// bench/fleet-scale.ts (200 / 2,000 / 10,000 hosts).
//
// DESIGN CHOICE: test/lab/fleet.ts gives every host its own address on the server's interface and
// its own listener (or its own xrdp), and per-host router rules: right for 200 hosts (at most 250,
// one /24), far too heavy for 10,000 (10,000 listening sockets, 10,000 policy rules). Here a host is
// still its own address on the wire, but a kind of host is an address RANGE:
//   - the server namespace owns the whole benchmarking range 198.18.0.0/15 (RFC 2544) with one
//     `local` route (Linux "AnyIP": every address in it is local, nothing is configured per host);
//   - one light responder (rdp-responder.ts) listens on 0.0.0.0 and answers every address with
//     xrdp's Connection Confirm and a real TLS handshake: port 3389 with the valid RSA-2048
//     certificate, port 3390 with the large one (the black-holed hosts are listed with :3390);
//   - refusing: an iptables REJECT --reject-with tcp-reset on the server for their range (the
//     client sees a refusal, as from a kernel with nothing listening);
//   - syn-dropped: the router drops SYNs to their range (as test/lab/fleet.ts);
//   - pmtu-blackhole: their range is 198.19.0.0/16, which the router reaches (and answers the client
//     from, by a policy rule on the source range) through routes with MTU 1400, and ICMP
//     "fragmentation needed" is dropped: one route and one rule for all of them.
// Nothing leaves the three namespaces: the client routes 198.18.0.0/15 to the router, the router to
// the server. Set-up costs a handful of commands whatever the number of hosts.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FLEET_EXPECT, type FleetKind } from './fleet.ts';
import { createTopology, type Topology } from './netns.ts';
import { bin } from './prereq.ts';
import { startResponder } from './rdp-responder.ts';
import { labCerts } from './xrdp.ts';

export { FLEET_EXPECT, type FleetKind };

export interface ScaleHost {
  addr: string;
  port: number;
  kind: FleetKind;
}

export interface ScaleFleet {
  topo: Topology;
  /** Mixed order, as an inventory would list them. */
  hosts: ScaleHost[];
  /** Write the hosts file (one ADDR:PORT a line) in the topology's temp dir. */
  writeHostsFile(name?: string): string;
  /** Commands run to build it (independent of the number of hosts). */
  setupCommands: number;
  destroy(): Promise<void>;
}

const TSX_LOADER = import.meta.resolve('tsx');
const PORT = 3389;
const HOLE_PORT = 3390;
const PATH_MTU = 1400;

/** 198.18.0.0 + n, dotted. */
function addrAt(base: number, n: number): string {
  const v = base + n;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}
const BASE = (198 << 24) + (18 << 16);
const HOLE_BASE = (198 << 24) + (19 << 16);

/** Build the fleet; on failure everything is removed. Up to 60,000 hosts of the first three kinds, 60,000 black-holed. */
export async function createScaleFleet(counts: Partial<Record<FleetKind, number>>): Promise<ScaleFleet> {
  const n = (k: FleetKind) => counts[k] ?? 0;
  if (n('healthy') + n('refusing') + n('syn-dropped') > 60_000 || n('pmtu-blackhole') > 60_000) throw new Error('at most 60,000 hosts a range');
  const certs = await labCerts();
  const topo = await createTopology({ kind: 'routed' });
  let commands = 0;
  try {
    const r = topo.router!;
    const hosts: ScaleHost[] = [];
    const ranges = new Map<FleetKind, string>();
    let next = 1;
    for (const kind of ['healthy', 'refusing', 'syn-dropped'] as const) {
      if (!n(kind)) continue;
      ranges.set(kind, `${addrAt(BASE, next)}-${addrAt(BASE, next + n(kind) - 1)}`);
      for (let i = 0; i < n(kind); i++) hosts.push({ addr: addrAt(BASE, next + i), port: PORT, kind });
      next += n(kind);
    }
    for (let i = 1; i <= n('pmtu-blackhole'); i++) hosts.push({ addr: addrAt(HOLE_BASE, i), port: HOLE_PORT, kind: 'pmtu-blackhole' });

    const batch = async (host: 'client' | 'router' | 'server', lines: string[]) => {
      commands++;
      const res = await topo.exec(host, [bin('ip'), '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 30_000 });
      if (res.exitCode !== 0) throw new Error(`ip -batch in ${host} failed: ${res.stderr}`);
    };
    const iptables = async (host: 'router' | 'server', args: string[]) => {
      commands++;
      await topo.iptables(host, args);
    };
    await batch('server', ['route add local 198.18.0.0/15 dev lo']);
    await batch('router', [`route add 198.18.0.0/15 via ${topo.server.addr} dev ${r.serverIf}`]);
    await batch('client', [`route add 198.18.0.0/15 via ${r.addr}`]);
    if (ranges.has('refusing')) {
      await iptables('server', ['-A', 'INPUT', '-m', 'iprange', '--dst-range', ranges.get('refusing')!, '-p', 'tcp', '--dport', String(PORT), '-j', 'REJECT', '--reject-with', 'tcp-reset']);
    }
    if (ranges.has('syn-dropped')) {
      await iptables('router', ['-A', 'FORWARD', '-m', 'iprange', '--dst-range', ranges.get('syn-dropped')!, '-p', 'tcp', '--syn', '--dport', String(PORT), '-j', 'DROP']);
    }
    if (n('pmtu-blackhole')) {
      // As in test/lab/fleet.ts, both directions through a 1400-byte route, frag-needed dropped.
      const own = topo.client.addr.split('.').slice(0, 3).join('.');
      await batch('router', [
        `route add ${own}.0/25 dev ${r.ifname} src ${r.addr} mtu ${PATH_MTU} table 100`,
        'rule add from 198.19.0.0/16 table 100 priority 100',
        `route add 198.19.0.0/16 via ${topo.server.addr} dev ${r.serverIf} mtu ${PATH_MTU}`,
      ]);
      for (const chain of ['FORWARD', 'OUTPUT']) await iptables('router', ['-A', chain, '-p', 'icmp', '--icmp-type', 'fragmentation-needed', '-j', 'DROP']);
    }
    commands++;
    await startResponder(topo, {
      listeners: [
        { addr: '0.0.0.0', port: PORT, cert: certs.valid },
        { addr: '0.0.0.0', port: HOLE_PORT, cert: certs.large },
      ],
    });

    // Mixed order (a fixed shuffle: the same fleet lists the same way).
    let seed = 0x9e3779b9;
    const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
    for (let i = hosts.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [hosts[i], hosts[j]] = [hosts[j]!, hosts[i]!];
    }
    return {
      topo,
      hosts,
      setupCommands: commands,
      writeHostsFile(name = 'hosts.txt') {
        const file = join(topo.tmpDir, name);
        writeFileSync(file, ['# rdpfix lab fleet (scale)', ...hosts.map((h) => `${h.addr}:${h.port}`)].join('\n') + '\n');
        return file;
      },
      destroy: () => topo.destroy(),
    };
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}

export interface WatchedRun {
  exitCode: number | null;
  ms: number;
  stderr: string;
  /** Lines of stdout, parsed by the caller's parse function (so that 10,000 reports are not kept). */
  lines: number;
  /** Most entries seen in /proc/PID/fd, sampled every sampleMs while it ran. */
  maxOpenFds: number;
  /** VmHWM of the process (peak RSS), from /proc/PID/status at the last sample, MB. */
  peakRssMb: number;
  samples: number;
}

/**
 * Run `node --import tsx ARGS` in the client namespace (`ip netns exec` execs, so the pid is node's)
 * and watch it from outside: open descriptors and peak RSS from /proc/PID, stdout line by line to
 * onLine (nothing kept here).
 */
export function watchNode(topo: Topology, args: string[], onLine: (line: string) => void, o: { cwd?: string; sampleMs?: number; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<WatchedRun> {
  const t0 = performance.now();
  const child = spawn(bin('ip'), ['netns', 'exec', topo.client.ns, process.execPath, '--import', TSX_LOADER, ...args], {
    cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let maxOpenFds = 0;
  let peakRssMb = 0;
  let samples = 0;
  let stderr = '';
  let lines = 0;
  const sample = () => {
    try {
      const fds = readdirSync(`/proc/${child.pid}/fd`).length;
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      maxOpenFds = Math.max(maxOpenFds, fds);
      if (hwm) peakRssMb = Math.max(peakRssMb, Math.round(Number(hwm[1]) / 1024));
      samples++;
    } catch { /* exited */ }
  };
  const timer = setInterval(sample, o.sampleMs ?? 20);
  const kill = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 600_000);
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-64 * 1024); });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines++;
    onLine(l);
  });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearInterval(timer);
      clearTimeout(kill);
      resolve({ exitCode: code, ms: Math.round(performance.now() - t0), stderr, lines, maxOpenFds, peakRssMb, samples });
    });
  });
}
