// Network-namespace topologies for real-network tests.
//
// DESIGN CHOICE: the client is its own namespace, not the root namespace.
//   The root namespace of the test machine has a real default route (eth0).
//   If the client lived there, a wrong address in a test, a route removed a
//   moment too early, or the tool under test probing "something else" would
//   send packets out of the machine. Inside our namespaces there is no default
//   route at all, only the lab's own 10.x subnets, so every stray packet ends
//   in ENETUNREACH. We never add routes, addresses or interfaces to the root
//   namespace: veths are created directly inside their namespaces.
//   The cost: Node cannot setns(), so code that must open connections from the
//   client runs in a child process: topology.runNode() (any tsx script) or
//   topology.call() (call one exported function of a module, JSON in/out).
//
// Shapes:
//   direct:  client(c-XXXXX) 10.A.B.2/25  <->  10.A.B.1/25 server(s-XXXXX)
//   routed:  client 10.A.B.2/25 <-> 10.A.B.1/25 router 10.A.B.129/25 <-> 10.A.B.130/25 server
//
// Namespaces are named rfx-<pid>-<rand>-{c,r,s}; the pid lets
// cleanupStaleLab() tell leftovers of dead runs from namespaces of tests that
// are running right now in another process. Subnets are random 10.x /24s; as
// every topology is sealed in its own namespaces a clash across processes would
// be harmless anyway, but distinct subnets keep logs and captures readable.
//
// Usage:
//   const topo = await createTopology({ kind: 'routed', pathMtu: 1400, pmtuBlackhole: true });
//   try {
//     const x = await startXrdp(topo, { cert: (await labCerts()).large });   // xrdp.ts
//     const r = await topo.call('client', probeModuleUrl, 'probe', [{ host: x.addr, port: x.port }]);
//     await topo.setMtu('client', 1400);
//   } finally {
//     await topo.destroy();
//   }
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bin } from './prereq.ts';

export const LAB_PREFIX = 'rfx-';
const IP = bin('ip');
// Absolute loader URL so `--import` works whatever the child's cwd is.
const TSX_LOADER = import.meta.resolve('tsx');
const NS_CALL = fileURLToPath(new URL('./ns-call.ts', import.meta.url));

// ---------------------------------------------------------------- processes

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** null when killed by a signal (e.g. on timeout) */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  timedOut: boolean;
}

export interface ExecOptions {
  /** Kill the process (group) after this long. Default 30 s. */
  timeoutMs?: number;
  input?: string | Buffer;
  /** Reject when the exit code is not 0. Default false. */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Kill a whole process group; children started detached lead their own group. */
function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try { process.kill(pid, signal); } catch { /* already gone */ }
  }
}

/** Run a command to completion (no shell). */
export function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    // detached: own process group, so a timeout also kills grandchildren.
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r: ExecResult = { stdout, stderr, exitCode: code, signal, ms: Math.round(performance.now() - t0), timedOut };
      if (opts.check && code !== 0) {
        reject(new Error(`${argv.join(' ')} failed (${timedOut ? 'timeout' : code ?? signal}): ${stderr.trim()}`));
      } else {
        resolve(r);
      }
    });
    child.stdin!.on('error', () => { /* child exited without reading stdin */ });
    child.stdin!.end(opts.input);
  });
}

/** A long-running background process inside a namespace. */
export class Spawned {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running = true;
  private out = '';

  constructor(readonly argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
    this.child = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    const keep = (d: string) => {
      // Keep the tail only: a chatty server must not grow the test's memory.
      this.out = (this.out + d).slice(-256 * 1024);
    };
    this.child.stdout!.setEncoding('utf8').on('data', keep);
    this.child.stderr!.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        keep(`spawn error: ${err.message}\n`);
        this.running = false;
        resolve({ code: null, signal: null });
      });
      this.child.on('exit', (code, signal) => {
        this.running = false;
        resolve({ code, signal });
      });
    });
    // A test that forgets destroy() must still be able to exit; the exit hook
    // then kills what is left.
    this.child.unref();
    (this.child.stdout as unknown as { unref?: () => void }).unref?.();
    (this.child.stderr as unknown as { unref?: () => void }).unref?.();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Combined stdout+stderr so far (tail). */
  output(): string {
    return this.out;
  }

  /** Resolve when the output matches; reject on exit or timeout. */
  waitForOutput(re: RegExp, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const tick = () => {
        const m = re.exec(this.out);
        if (m) return resolve(m[0]);
        if (!this.running) return reject(new Error(`process exited before ${re}: ${this.argv.join(' ')}\n${this.out}`));
        if (Date.now() - t0 > timeoutMs) return reject(new Error(`timeout waiting for ${re}: ${this.argv.join(' ')}\n${this.out}`));
        setTimeout(tick, 20);
      };
      tick();
    });
  }

  /** SIGTERM the process group, SIGKILL after graceMs. Resolves once it exited. */
  async kill(graceMs = 1000): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(this.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    // Forked children (xrdp forks per connection) may outlive the leader.
    killGroup(this.pid, 'SIGKILL');
  }

  killSync(): void {
    killGroup(this.pid, 'SIGKILL');
  }
}

// ---------------------------------------------------------------- topology

export type HostName = 'client' | 'router' | 'server';

export interface Host {
  name: HostName;
  ns: string;
  /** Main interface: the client's and server's only veth; the router's client-facing one. */
  ifname: string;
  addr: string;
}

export interface RouterHost extends Host {
  /** Router interface/address facing the server (ifname/addr face the client). */
  serverIf: string;
  serverAddr: string;
}

export interface TopologyOptions {
  /** 'direct': client <-> server. 'routed' (default): client <-> router <-> server. */
  kind?: 'direct' | 'routed';
  /**
   * Routed only. The router forwards IP packets of at most this size, in both
   * directions (a route MTU on the router, like a tunnel inside it). Larger
   * packets with DF set make the router answer ICMP "fragmentation needed"
   * (unless pmtuBlackhole). The end hosts keep 1500, so they do not know.
   */
  pathMtu?: number;
  /** MTU on both ends of the client link (a physically smaller link). */
  clientLinkMtu?: number;
  /** Routed only: MTU on both ends of the router<->server link. */
  serverLinkMtu?: number;
  /** Routed only: the router drops ICMP frag-needed (FORWARD and OUTPUT) = PMTU black hole. */
  pmtuBlackhole?: boolean;
  /** Drop this fraction (0..1) of packets travelling client -> server. */
  lossToServer?: number;
  /** Drop this fraction (0..1) of packets travelling server -> client. */
  lossToClient?: number;
  /** Silently drop TCP SYNs to these server ports: connect() times out. */
  dropSynPorts?: number[];
}

const live = new Set<Topology>();
const usedSubnets = new Set<string>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' runs for normal exits and uncaught exceptions; only sync work is possible there.
  process.on('exit', () => {
    for (const t of live) t.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const t of live) t.destroySync();
      process.exit(128 + (osConstants.signals[sig] ?? 1));
    });
  }
}

function pickSubnet(): string {
  for (;;) {
    const [a, b] = randomBytes(2);
    const net = `10.${100 + (a % 100)}.${b}`;
    if (!usedSubnets.has(net)) {
      usedSubnets.add(net);
      return net;
    }
  }
}

export class Topology {
  readonly id: string;
  readonly kind: 'direct' | 'routed';
  readonly client: Host;
  readonly server: Host;
  readonly router?: RouterHost;
  /** Scratch dir for configs/logs of this topology; removed on destroy. */
  readonly tmpDir: string;
  /** Every namespace we (tried to) create, so destroy() works after partial creation. */
  private namespaces: string[] = [];
  private spawned = new Set<Spawned>();
  private destroying?: Promise<void>;
  private destroyed = false;
  private subnet: string;

  constructor(readonly opts: TopologyOptions) {
    const rand = randomBytes(3).toString('hex').slice(0, 5);
    this.id = `${process.pid}-${rand}`;
    this.kind = opts.kind ?? 'routed';
    this.subnet = pickSubnet();
    const n = this.subnet;
    const ns = (s: string) => `${LAB_PREFIX}${this.id}-${s}`;
    // Interface names: <=15 chars, unique per topology.
    this.client = { name: 'client', ns: ns('c'), ifname: `c-${rand}`, addr: `${n}.2` };
    if (this.kind === 'direct') {
      this.server = { name: 'server', ns: ns('s'), ifname: `s-${rand}`, addr: `${n}.1` };
    } else {
      this.router = {
        name: 'router', ns: ns('r'), ifname: `rc-${rand}`, addr: `${n}.1`,
        serverIf: `rs-${rand}`, serverAddr: `${n}.129`,
      };
      this.server = { name: 'server', ns: ns('s'), ifname: `s-${rand}`, addr: `${n}.130` };
    }
    this.tmpDir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${this.id}-`));
    live.add(this);
    installExitHooks();
  }

  host(name: HostName): Host {
    const h = name === 'router' ? this.router : this[name];
    if (!h) throw new Error(`topology ${this.id} (${this.kind}) has no ${name}`);
    return h;
  }

  /** Build it. Called by createTopology(). */
  async build(): Promise<void> {
    const o = this.opts;
    const n = this.subnet;
    if ((o.pmtuBlackhole || o.pathMtu || o.serverLinkMtu) && this.kind === 'direct') {
      throw new Error('pathMtu, serverLinkMtu and pmtuBlackhole need kind "routed"');
    }
    const hosts = [this.client, ...(this.router ? [this.router] : []), this.server];
    for (const h of hosts) {
      this.namespaces.push(h.ns);
      await run([IP, 'netns', 'add', h.ns], { check: true });
      await this.ip(h, ['link', 'set', 'lo', 'up']);
      // No IPv6: keeps link-local chatter out of the loss statistics.
      // tcp_mtu_probing=0 explicitly: Linux' own black-hole detection must
      // not quietly heal the PMTU black hole we build on purpose.
      const sysctls = [
        'net.ipv6.conf.all.disable_ipv6=1',
        'net.ipv6.conf.default.disable_ipv6=1',
        'net.ipv4.tcp_mtu_probing=0',
        `net.ipv4.ip_forward=${h.name === 'router' ? 1 : 0}`,
      ];
      await this.exec(h.name, [bin('sysctl'), '-qw', ...sysctls], { check: true, timeoutMs: 5000 });
    }

    const cNet = `${n}.0/25`;
    const sNet = `${n}.128/25`;
    const c = this.client;
    const s = this.server;
    const r = this.router;
    if (!r) {
      await this.veth(c, s, o.clientLinkMtu);
      await this.addr(c, c.addr, 25);
      await this.addr(s, s.addr, 25);
    } else {
      await this.veth(c, r, o.clientLinkMtu, r.ifname);
      await this.veth(s, r, o.serverLinkMtu, r.serverIf);
      await this.addr(c, c.addr, 25);
      await this.addr(r, r.addr, 25, r.ifname);
      await this.addr(r, r.serverAddr, 25, r.serverIf);
      await this.addr(s, s.addr, 25);
      // Only routes to the lab's own subnets: no default route anywhere.
      await this.ip(c, ['route', 'add', sNet, 'via', r.addr]);
      await this.ip(s, ['route', 'add', cNet, 'via', r.serverAddr]);
      if (o.pathMtu) {
        // A route MTU is honoured when forwarding (ip_forward -> frag-needed)
        // but, unlike a small interface MTU, does not make the veth silently
        // drop big packets on receive. So it behaves like a real tunnel.
        for (const [net, dev, src] of [[cNet, r.ifname, r.addr], [sNet, r.serverIf, r.serverAddr]]) {
          await this.ip(r, ['route', 'replace', net, 'dev', dev, 'proto', 'kernel', 'scope', 'link', 'src', src, 'mtu', String(o.pathMtu)]);
        }
      }
    }

    // Filters sit on the router when there is one (like a real middlebox),
    // else on the server's INPUT/OUTPUT.
    if (r && o.pmtuBlackhole) {
      for (const chain of ['FORWARD', 'OUTPUT']) {
        await this.iptables('router', ['-A', chain, '-p', 'icmp', '--icmp-type', 'fragmentation-needed', '-j', 'DROP']);
      }
    }
    const toServer = r ? ['router', 'FORWARD', '-i', r.ifname] as const : ['server', 'INPUT', '-i', s.ifname] as const;
    const toClient = r ? ['router', 'FORWARD', '-i', r.serverIf] as const : ['server', 'OUTPUT', '-o', s.ifname] as const;
    for (const port of o.dropSynPorts ?? []) {
      const [h, chain, dir, dev] = toServer;
      await this.iptables(h, ['-A', chain, dir, dev, '-p', 'tcp', '--syn', '--dport', String(port), '-j', 'DROP']);
    }
    for (const [p, [h, chain, dir, dev]] of [[o.lossToServer, toServer], [o.lossToClient, toClient]] as const) {
      if (!p) continue;
      await this.iptables(h, ['-A', chain, dir, dev, '-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP']);
    }
  }

  private async veth(a: Host, b: Host, mtu: number | undefined, bIf = b.ifname): Promise<void> {
    await run([IP, 'link', 'add', a.ifname, 'netns', a.ns, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.ns], { check: true });
    for (const [h, dev] of [[a, a.ifname], [b, bIf]] as const) {
      if (mtu) await this.ip(h, ['link', 'set', 'dev', dev, 'mtu', String(mtu)]);
      await this.ip(h, ['link', 'set', 'dev', dev, 'up']);
    }
  }

  private addr(h: Host, addr: string, prefix: number, dev = h.ifname): Promise<ExecResult> {
    return this.ip(h, ['addr', 'add', `${addr}/${prefix}`, 'dev', dev]);
  }

  private ip(h: Host, args: string[]): Promise<ExecResult> {
    return run([IP, '-n', h.ns, ...args], { check: true, timeoutMs: 5000 });
  }

  /** Run a command inside a host's namespace and wait for it. */
  exec(host: HostName, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([IP, 'netns', 'exec', this.host(host).ns, ...argv], opts);
  }

  /** Start a background process inside a host's namespace; destroy() kills it. */
  spawn(host: HostName, argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Spawned {
    if (this.destroyed) throw new Error(`topology ${this.id} is destroyed`);
    // `ip netns exec` execs the command, so the pid we get is the command's.
    const p = new Spawned([IP, 'netns', 'exec', this.host(host).ns, ...argv], opts);
    this.spawned.add(p);
    p.exited.then(() => this.spawned.delete(p));
    return p;
  }

  /** Run `node --import tsx ...args` inside a namespace (e.g. a probe script). */
  runNode(host: HostName, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(host, [process.execPath, '--import', TSX_LOADER, ...args], opts);
  }

  /** Like runNode, but in the background. */
  spawnNode(host: HostName, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Spawned {
    return this.spawn(host, [process.execPath, '--import', TSX_LOADER, ...args], opts);
  }

  /**
   * Call `exportName(...args)` of a module inside a namespace and return its
   * (JSON-serialisable) result; a thrown error is re-thrown here with its message.
   */
  async call<T = unknown>(host: HostName, module: string | URL, exportName: string, args: unknown[] = [], opts: ExecOptions = {}): Promise<T> {
    const href = module instanceof URL ? module.href : module.startsWith('file:') ? module : pathToFileURL(module).href;
    const r = await this.runNode(host, [NS_CALL], { timeoutMs: 60_000, ...opts, input: JSON.stringify({ module: href, exportName, args }) });
    const line = r.stdout.split('\n').reverse().find((l) => l.startsWith('@@rfx-result@@'));
    if (!line) throw new Error(`ns call ${exportName} gave no result (exit ${r.exitCode}${r.timedOut ? ', timeout' : ''}):\n${r.stderr}${r.stdout}`);
    const res = JSON.parse(line.slice('@@rfx-result@@'.length)) as { ok: boolean; value?: T; error?: string };
    if (!res.ok) throw new Error(`in namespace ${host}: ${res.error}`);
    return res.value as T;
  }

  /** Add/remove iptables rules in a host's namespace (throws on error). */
  async iptables(host: HostName, args: string[]): Promise<void> {
    await this.exec(host, [bin('iptables'), '-w', ...args], { check: true, timeoutMs: 10_000 });
  }

  async setMtu(host: HostName, mtu: number, ifname = this.host(host).ifname): Promise<void> {
    await this.ip(this.host(host), ['link', 'set', 'dev', ifname, 'mtu', String(mtu)]);
  }

  async getMtu(host: HostName, ifname = this.host(host).ifname): Promise<number> {
    const r = await this.ip(this.host(host), ['-j', 'link', 'show', 'dev', ifname]);
    return (JSON.parse(r.stdout) as { mtu: number }[])[0].mtu;
  }

  /**
   * Wait until something listens on addr:port in the host's namespace.
   * Uses `ss` rather than a test connection: connecting would itself trigger
   * peers (stall, endless bytes) and add noise to xrdp's log.
   */
  async waitListening(host: HostName, port: number, addr = this.host(host).addr, timeoutMs = 5000): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const r = await this.exec(host, [bin('ss'), '-Hltn', 'sport', '=', `:${port}`], { timeoutMs: 2000 });
      const local = r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[3]);
      if (local.some((l) => l === `${addr}:${port}` || l === `0.0.0.0:${port}` || l === `*:${port}`)) return;
      if (Date.now() - t0 > timeoutMs) throw new Error(`nothing listening on ${addr}:${port} in ${host} after ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 30));
    }
  }

  /** Kill everything we started, delete the namespaces (and with them the veths). Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      // Polite first, so servers can flush their logs.
      await Promise.all([...this.spawned].map((p) => p.kill(500)));
      this.destroySync();
    })();
    return this.destroying;
  }

  /** Synchronous teardown for exit hooks (and the last step of destroy()). */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.spawned) p.killSync();
    for (const ns of this.namespaces) deleteNamespaceSync(ns);
    rmSync(this.tmpDir, { recursive: true, force: true });
    live.delete(this);
  }
}

function deleteNamespaceSync(ns: string): void {
  // Anything still running inside would keep the namespace (and veths) alive.
  try {
    const pids = execFileSync(IP, ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
  } catch { /* namespace does not exist */ }
  try {
    execFileSync(IP, ['netns', 'del', ns], { stdio: 'ignore' });
  } catch { /* already gone or never created */ }
}

/** Create and build a topology; on failure everything created so far is removed. */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const t = new Topology(opts);
  try {
    await t.build();
    return t;
  } catch (err) {
    await t.destroy();
    throw err;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove namespaces and temp dirs left by lab runs whose process is gone
 * (crash, SIGKILL). Live runs in other processes are left alone.
 * Returns the names removed.
 */
export function cleanupStaleLab(): string[] {
  const removed: string[] = [];
  const stale = (name: string) => {
    const m = new RegExp(`^${LAB_PREFIX}(\\d+)-`).exec(name);
    return m !== null && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
  };
  let list = '';
  try {
    list = execFileSync(IP, ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch { /* no ip / no netns support: nothing to clean */ }
  for (const name of list.split('\n').map((l) => l.split(' ')[0]).filter(Boolean)) {
    if (!stale(name)) continue;
    deleteNamespaceSync(name);
    removed.push(name);
  }
  for (const name of readdirSync(tmpdir())) {
    if (!stale(name)) continue;
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
    removed.push(join(tmpdir(), name));
  }
  return removed;
}
