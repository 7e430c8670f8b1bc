// Which interface carries traffic to a host, its MTU, and whether it looks like a VPN — on Linux
// (`ip route get` + `ip link`), Windows (`Find-NetRoute` + `Get-NetIPInterface` in PowerShell) and
// macOS (`route -n get` + `ifconfig`). Plus the parsers for each tool's output (tested against
// recorded samples in test/fixtures/route/) and the interface MTU readers lower-mtu uses.
//
// Lookups never throw for a missing tool or an odd answer: the route is then reported as unknown
// (nulls plus an `error`), because naming the route is evidence, not the job itself.
import { execFile } from 'node:child_process';
import { findProgram } from './which.ts';
import { encodeCommand, extractResult } from './ps.ts';
import { psStep } from './ps-loader.ts';

export interface RouteInfo {
  /** Outgoing interface (Linux/macOS name, Windows InterfaceAlias), or null when unknown. */
  interface: string | null;
  /** That interface's MTU (IPv4 on Windows), or null when unknown. */
  mtu: number | null;
  /** The interface looks like a VPN tunnel (by name or adapter description). */
  vpn: boolean;
  gateway: string | null;
  /** Local source address the OS would use. */
  source: string | null;
  /** Windows adapter description ("WireGuard Tunnel", "TAP-Windows Adapter V9"), when known. */
  description: string | null;
  /** Why the route could not be named, when it could not. */
  error?: string;
}

// ------------------------------------------------------------------ VPN names

/** Unix interface names of tunnels: tun0, tap0, wg0, ppp0, utun3, ipsec0, gpd0, cscotun0, tailscale0... */
const VPN_IFNAME = /^(?:tun|tap|wg|ppp|utun|ipsec|gpd|cscotun|vpn|tailscale|nordlynx|zt|wt|ztun)[\w.-]*$/i;
/** Adapter names/descriptions of VPN clients (Windows aliases and descriptions, macOS services). */
const VPN_WORDS =
  /wireguard|openvpn|anyconnect|cisco\s+(?:systems\s+)?vpn|globalprotect|pangp|palo\s*alto|fortinet|forticlient|fortissl|tap-windows|tap-win32|wintun|\bvpn\b|pulse\s*secure|ivanti|juniper|sonicwall|netextender|check\s*point|zscaler|nordlynx|tailscale|zerotier|\bppp\b|wan\s+miniport/i;

/** Does this interface (name, optionally its adapter description) look like a VPN tunnel? */
export function isVpnInterface(name: string | null | undefined, description?: string | null): boolean {
  if (name && (VPN_IFNAME.test(name) || VPN_WORDS.test(name))) return true;
  return !!description && VPN_WORDS.test(description);
}

// ------------------------------------------------------------------ programs

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/**
 * Absolute path of a Unix system program, also looking in the sbin folders a non-login PATH lacks
 * (where Debian keeps `ip`, macOS `route`/`ifconfig`). Falls back to the bare name.
 */
export function systemProgram(name: string): string {
  if (process.platform === 'win32') return name;
  return findProgram(name, SBIN) ?? name;
}

export interface ExecOut {
  stdout: string;
  stderr: string;
  code: number | null;
  /** spawn error code (ENOENT when the program is missing). */
  error?: string;
}

/** Run a program (argv array, no shell), C locale, stdin closed, bounded in time. Never rejects. */
export function execArgv(argv: string[], timeoutMs = 10_000, input?: string): Promise<ExecOut> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: timeoutMs, windowsHide: true, maxBuffer: 4 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C', LANG: 'C' } },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : child.exitCode ?? null) : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr), code, ...(e && typeof e.code === 'string' ? { error: e.code } : {}) });
      },
    );
    // Always close stdin: a program that reads it must never wait on us.
    child.stdin?.on('error', () => {}).end(input ?? '');
  });
}

// ------------------------------------------------------------------ Linux

export interface IpRouteGet {
  dev: string | null;
  gateway: string | null;
  source: string | null;
  /** A route MTU or a cached path MTU ("cache expires 598sec mtu 1400"), if shown. */
  mtu: number | null;
}

/** `ip route get ADDR`: "10.1.2.130 via 10.1.2.1 dev eth0 src 10.1.2.2 uid 0 \n    cache expires 598sec mtu 1400". */
export function parseIpRouteGet(text: string): IpRouteGet {
  const word = (k: string) => new RegExp(`(?:^|\\s)${k}\\s+(\\S+)`).exec(text)?.[1] ?? null;
  const mtu = /(?:^|\s)mtu\s+(?:lock\s+)?(\d+)/.exec(text)?.[1];
  return { dev: word('dev'), gateway: word('via'), source: word('src'), mtu: mtu ? Number(mtu) : null };
}

/** `ip -o link show dev X` (or `ip link show`): "2: eth0: <BROADCAST,...,UP> mtu 1500 qdisc ...". */
export function parseIpLinkMtu(text: string): number | null {
  const m = /\smtu\s+(\d+)/.exec(text);
  return m ? Number(m[1]) : null;
}

/** Names of all links in `ip -o link show` output ("3: c-1a2b3@if2: <...>" -> "c-1a2b3"). */
export function parseIpLinkNames(text: string): string[] {
  return text.split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((n): n is string => !!n);
}

async function linuxRoute(address: string): Promise<RouteInfo> {
  const ip = systemProgram('ip');
  const r = await execArgv([ip, 'route', 'get', address]);
  if (r.code !== 0) return unknownRoute(r.error === 'ENOENT' ? "'ip' (iproute2) is not installed" : (r.stderr || r.stdout).trim() || `ip route get exited ${r.code}`);
  const route = parseIpRouteGet(r.stdout);
  if (!route.dev) return unknownRoute(`no "dev" in: ${r.stdout.trim().slice(0, 200)}`);
  const link = await execArgv([ip, '-o', 'link', 'show', 'dev', route.dev]);
  const mtu = parseIpLinkMtu(link.stdout);
  return { interface: route.dev, mtu, vpn: isVpnInterface(route.dev), gateway: route.gateway, source: route.source, description: null };
}

// ------------------------------------------------------------------ macOS

export interface MacRouteGet {
  interface: string | null;
  gateway: string | null;
  mtu: number | null;
}

/**
 * macOS `route -n get ADDR`:
 *      route to: 10.8.0.5
 *   destination: 10.8.0.0
 *     interface: utun4
 *  recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire
 *        0         0         0         0         0         0      1400         0
 */
export function parseMacRouteGet(text: string): MacRouteGet {
  const field = (k: string) => new RegExp(`^\\s*${k}:\\s*(\\S+)`, 'm').exec(text)?.[1] ?? null;
  let mtu: number | null = null;
  const lines = text.split(/\r?\n/);
  const h = lines.findIndex((l) => /\bmtu\b/.test(l) && /recvpipe/.test(l));
  if (h >= 0 && lines[h + 1]) {
    const col = lines[h]!.trim().split(/\s+/).indexOf('mtu');
    const v = lines[h + 1]!.trim().split(/\s+/)[col];
    if (v && /^\d+$/.test(v) && Number(v) > 0) mtu = Number(v);
  }
  return { interface: field('interface'), gateway: field('gateway'), mtu };
}

/** macOS/BSD `ifconfig en0`: "en0: flags=8863<UP,BROADCAST,...> mtu 1500". */
export function parseIfconfigMtu(text: string): number | null {
  const m = /\bmtu\s+(\d+)/.exec(text);
  return m ? Number(m[1]) : null;
}

async function macRoute(address: string, family: 4 | 6): Promise<RouteInfo> {
  const r = await execArgv([systemProgram('route'), '-n', 'get', ...(family === 6 ? ['-inet6'] : []), address]);
  if (r.code !== 0) return unknownRoute((r.stderr || r.stdout).trim() || `route -n get exited ${r.code}`);
  const route = parseMacRouteGet(r.stdout);
  if (!route.interface) return unknownRoute(`no "interface:" in: ${r.stdout.trim().slice(0, 200)}`);
  let mtu = route.mtu;
  // The route's mtu column is the route MTU; the interface's own MTU is what lower-mtu changes.
  const ifc = await execArgv([systemProgram('ifconfig'), route.interface]);
  mtu = parseIfconfigMtu(ifc.stdout) ?? mtu;
  return { interface: route.interface, mtu, vpn: isVpnInterface(route.interface), gateway: route.gateway, source: null, description: null };
}

// ------------------------------------------------------------------ Windows

export interface NetRoute {
  interfaceAlias: string | null;
  interfaceIndex: number | null;
  nextHop: string | null;
  sourceAddress: string | null;
  destinationPrefix: string | null;
}

/**
 * `Find-NetRoute -RemoteIPAddress X | ConvertTo-Json`: an array of two CIM objects, the
 * MSFT_NetIPAddress the source address comes from (IPAddress, InterfaceAlias, InterfaceIndex) and
 * the MSFT_NetRoute chosen (DestinationPrefix, NextHop, InterfaceAlias). Accepts the JSON text or
 * the parsed value; a single object (PowerShell unwraps one-element arrays) works too.
 */
export function parseFindNetRoute(json: string | unknown): NetRoute {
  const doc: unknown = typeof json === 'string' ? JSON.parse(json.replace(/^\uFEFF/, '')) : json;
  const items = (Array.isArray(doc) ? doc : [doc]).filter((x): x is Record<string, unknown> => !!x && typeof x === 'object');
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  const addr = items.find((i) => str(i.IPAddress));
  const route = items.find((i) => str(i.NextHop) || str(i.DestinationPrefix));
  const any = route ?? addr ?? items[0];
  const idx = any?.InterfaceIndex;
  return {
    interfaceAlias: str(any?.InterfaceAlias),
    interfaceIndex: typeof idx === 'number' ? idx : null,
    nextHop: str(route?.NextHop),
    sourceAddress: str(addr?.IPAddress),
    destinationPrefix: str(route?.DestinationPrefix),
  };
}

export interface NetshSubinterface {
  mtu: number;
  mediaSenseState: number;
  bytesIn: number;
  bytesOut: number;
  interface: string;
}

/**
 * `netsh interface ipv4 show subinterfaces`:
 *
 *    MTU  MediaSenseState   Bytes In  Bytes Out  Interface
 * ------  ---------------  ---------  ---------  -------------
 * 4294967295                1          0      41906  Loopback Pseudo-Interface 1
 *   1500                1  2304871530  136517262  Ethernet
 *
 * The interface name is the rest of the line (it may contain spaces).
 */
export function parseNetshSubinterfaces(text: string): NetshSubinterface[] {
  const out: NetshSubinterface[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S.*?)\s*$/.exec(line);
    if (m) out.push({ mtu: Number(m[1]), mediaSenseState: Number(m[2]), bytesIn: Number(m[3]), bytesOut: Number(m[4]), interface: m[5]! });
  }
  return out;
}

/** The read-only PowerShell that names the route on Windows (scripts/ps/route-lookup.ps1; the address via $P). */
export function windowsRouteScript(address: string): string {
  return psStep({
    name: 'route-lookup',
    elevated: false,
    runsOn: 'client',
    summary: 'name the interface and MTU that carry traffic to one address (read-only)',
    file: 'route-lookup',
    entry: 'Get-RdpNetRoute',
    params: { Address: address },
  });
}

async function windowsRoute(address: string): Promise<RouteInfo> {
  const script = windowsRouteScript(address);
  const r = await execArgv(['powershell.exe', '-NoProfile', '-NonInteractive', '-EncodedCommand', encodeCommand(script)], 30_000);
  if (r.error === 'ENOENT') return unknownRoute('powershell.exe was not found');
  let doc: { status?: string; error?: string; routes?: unknown; mtu?: number | null; description?: string | null };
  try {
    doc = extractResult(r.stdout);
  } catch (e) {
    return unknownRoute((e as Error).message);
  }
  if (doc.status !== 'ok') return unknownRoute(doc.error ?? 'Find-NetRoute failed');
  const route = parseFindNetRoute(doc.routes ?? []);
  const mtu = typeof doc.mtu === 'number' ? doc.mtu : null;
  return {
    interface: route.interfaceAlias,
    mtu,
    vpn: isVpnInterface(route.interfaceAlias, doc.description),
    gateway: route.nextHop && !/^(0\.0\.0\.0|::)$/.test(route.nextHop) ? route.nextHop : null,
    source: route.sourceAddress,
    description: doc.description ?? null,
  };
}

// ------------------------------------------------------------------ entry points

function unknownRoute(error: string): RouteInfo {
  return { interface: null, mtu: null, vpn: false, gateway: null, source: null, description: null, error };
}

/** Name the outgoing interface for an address (a literal IP), its MTU, and whether it is a VPN. */
export async function describeRoute(address: string, family: 4 | 6 = address.includes(':') ? 6 : 4, platform: NodeJS.Platform = process.platform): Promise<RouteInfo> {
  try {
    if (platform === 'win32') return await windowsRoute(address);
    if (platform === 'darwin') return await macRoute(address, family);
    return await linuxRoute(address);
  } catch (e) {
    return unknownRoute((e as Error).message);
  }
}

export interface InterfaceState {
  exists: boolean;
  mtu: number | null;
  /** Other interface names, for "does not exist" messages. */
  available: string[];
}

/** Current MTU of a Linux or macOS interface (Windows goes through PowerShell in lower-mtu). */
export async function readInterfaceMtu(name: string, platform: NodeJS.Platform = process.platform): Promise<InterfaceState> {
  if (platform === 'darwin') {
    const r = await execArgv([systemProgram('ifconfig'), name]);
    if (r.code === 0) return { exists: true, mtu: parseIfconfigMtu(r.stdout), available: [] };
    const all = await execArgv([systemProgram('ifconfig'), '-l']);
    return { exists: false, mtu: null, available: all.stdout.trim().split(/\s+/).filter(Boolean) };
  }
  const ip = systemProgram('ip');
  const r = await execArgv([ip, '-o', 'link', 'show', 'dev', name]);
  if (r.code === 0 && parseIpLinkMtu(r.stdout) !== null) return { exists: true, mtu: parseIpLinkMtu(r.stdout), available: [] };
  const all = await execArgv([ip, '-o', 'link', 'show']);
  return { exists: false, mtu: null, available: parseIpLinkNames(all.stdout) };
}
