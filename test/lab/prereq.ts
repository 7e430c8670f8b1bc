// Prerequisite checks for the real-network lab tests.
//
// Lab tests need root (network namespaces, iptables) and a few Debian
// packages. On a developer machine without them the tests should skip with
// one clear line; in CI (CI=true) a missing prerequisite is a failure,
// because a silently skipped lab would hide regressions.
import { spawnSync } from 'node:child_process';
import { findProgram } from '../../scripts/lib/which.ts';

export type LabNeed =
  | 'root'
  | 'netns'
  | 'xrdp'
  | 'socat'
  | 'iptables'
  | 'ping'
  | 'openssl'
  | 'nmap'
  | 'tracepath'
  | 'xfreerdp'
  | 'freerdp-shadow-cli'
  | 'Xvfb';

// sbin directories are often missing from a non-login PATH, but that is where
// Debian puts ip, iptables and xrdp.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/** Absolute path of an executable, or null. Looks in PATH plus the sbin dirs. */
export function which(name: string): string | null {
  return findProgram(name, EXTRA_DIRS);
}

/** Like which(), but returns the bare name so the error shows up at spawn time. */
export function bin(name: string): string {
  return which(name) ?? name;
}

// Results are cached: the netns check creates a namespace, no need to repeat it.
const cache = new Map<LabNeed, string | null>();

function check(need: LabNeed): string | null {
  switch (need) {
    case 'root': {
      const uid = process.getuid?.();
      return uid === 0 ? null : `root (running as uid ${uid ?? 'unknown'})`;
    }
    case 'netns': {
      // The only honest test is to create one: containers without
      // CAP_SYS_ADMIN have the ip binary but cannot add namespaces.
      // The name matches the lab pattern so cleanupStaleLab() finds it if we die here.
      const ip = which('ip');
      if (!ip) return 'netns (iproute2 "ip" not found)';
      const name = `rfx-${process.pid}-prereq`;
      const add = spawnSync(ip, ['netns', 'add', name], { encoding: 'utf8', timeout: 5000 });
      spawnSync(ip, ['netns', 'del', name], { timeout: 5000 });
      if (add.status !== 0) return `netns (ip netns add failed: ${(add.stderr || add.error?.message || '').trim()})`;
      return null;
    }
    case 'iptables': {
      const p = which('iptables');
      if (!p) return 'iptables (not found)';
      // Read-only listing proves the kernel side (nf_tables/xtables) works.
      const r = spawnSync(p, ['-w', '-S', 'OUTPUT'], { encoding: 'utf8', timeout: 5000 });
      return r.status === 0 ? null : `iptables (does not work: ${(r.stderr || '').trim()})`;
    }
    default:
      return which(need) ? null : `${need} (not found in PATH or sbin)`;
  }
}

/** Human descriptions of the missing prerequisites; empty when all are present. */
export function labMissing(needs: LabNeed[]): string[] {
  const missing: string[] = [];
  // netns and iptables checks are meaningless (and noisy) without root.
  const rootOk = needs.includes('root') || needs.includes('netns') || needs.includes('iptables')
    ? cached('root') === null
    : true;
  for (const need of needs) {
    if (!rootOk && (need === 'netns' || need === 'iptables')) continue;
    const m = cached(need);
    if (m) missing.push(m);
  }
  if (!rootOk && !needs.includes('root')) missing.unshift(cached('root')!);
  return missing;
}

function cached(need: LabNeed): string | null {
  if (!cache.has(need)) cache.set(need, check(need));
  return cache.get(need)!;
}

/**
 * true: run the test. false: skipped (one line printed).
 * Throws in CI, where a missing prerequisite must fail the build.
 */
export function labGate(name: string, needs: LabNeed[]): boolean {
  const missing = labMissing(needs);
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') {
    throw new Error(`lab test "${name}" cannot run in CI: missing ${missing.join(', ')}`);
  }
  console.log(`skip: ${name}: needs ${missing.join(', ')}`);
  return false;
}
