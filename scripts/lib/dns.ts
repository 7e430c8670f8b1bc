// One name lookup for every script that talks to a host by name (diagnose, probe-rdp,
// test-vpn-latency; the runner can use it to refuse a host that does not resolve). Uses the
// system resolver (getaddrinfo: hosts file, DNS suffixes, the VPN's DNS), like the RDP client does,
// bounded in time, and never throws: a name that does not resolve is a finding, not a crash.
import { isIP } from 'node:net';

export type Resolved = { address: string; family: 4 | 6; ms: number };
export type Unresolved = {
  error: string;
  /** ENOTFOUND, EAI_AGAIN, ENODATA, ETIMEOUT (no answer within the time limit), ... */
  code: string;
  ms: number;
};

export const DNS_TIMEOUT_MS = 3000;

/** What a getaddrinfo error code means, in words an admin can act on. */
export function dnsErrorText(host: string, code: string): string {
  switch (code) {
    case 'ENOTFOUND': return `the name ${host} does not exist in DNS (ENOTFOUND)`;
    case 'ENODATA': return `the name ${host} exists but has no address record (ENODATA)`;
    case 'EAI_AGAIN': return `the DNS server did not answer for ${host} (EAI_AGAIN: temporary failure)`;
    case 'ETIMEOUT': return `no DNS answer for ${host} (ETIMEOUT: no answer within the time limit)`;
    default: return `the lookup of ${host} failed (${code})`;
  }
}

export function isResolved(r: Resolved | Unresolved): r is Resolved {
  return 'address' in r;
}

/** The address the system resolver gives for `host` (an IP literal is returned as it is). */
export async function resolveHost(host: string, timeoutMs: number = DNS_TIMEOUT_MS): Promise<Resolved | Unresolved> {
  const t0 = performance.now();
  const ms = () => Math.round((performance.now() - t0) * 100) / 100;
  const v = isIP(host);
  if (v) return { address: host, family: v === 6 ? 6 : 4, ms: 0 };
  const { lookup } = await import('node:dns/promises');
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      lookup(host),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEOUT' })), timeoutMs); }),
    ]);
    return { address: r.address, family: r.family === 6 ? 6 : 4, ms: ms() };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'ERROR';
    return { error: dnsErrorText(host, code), code, ms: ms() };
  } finally {
    clearTimeout(timer);
  }
}
