// One validator per kind of value. Each returns the normalised value or throws a UsageError that
// names the value and says what is allowed (exit 2, nothing run). Validation is the first line of
// defence; quoting (lib/ps.ts psQuote) is the second and is applied regardless.
import { isIP } from 'node:net';
import { UsageError } from './errors.ts';

const show = (v: unknown) => JSON.stringify(String(v)).slice(0, 120);

export interface HostPort {
  host: string;
  port?: number;
  /** 4 or 6 for literal addresses, 0 for DNS names. */
  family: 0 | 4 | 6;
}

const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function isDnsName(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n.length > 0 && n.length <= 253 && n.split('.').every((l) => DNS_LABEL.test(l));
}

/** Host: DNS name, IPv4, or IPv6 in brackets; optional :port. */
export function validateHost(value: string, what = 'host'): HostPort {
  const v = String(value ?? '').trim();
  const bad = (why: string) =>
    new UsageError(`invalid ${what} ${show(value)}: ${why}`, 'expected a DNS name, an IPv4 address or [IPv6], optionally followed by :PORT');
  if (!v) throw bad('it is empty');
  let host = v;
  let portText: string | undefined;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    if (close < 0) throw bad('missing ]');
    host = v.slice(1, close);
    const rest = v.slice(close + 1);
    if (rest) {
      if (!rest.startsWith(':')) throw bad('unexpected text after ]');
      portText = rest.slice(1);
    }
    if (isIP(host) !== 6) throw bad(`${show(host)} is not an IPv6 address`);
    return { host, family: 6, ...(portText !== undefined ? { port: validatePort(portText, `port in ${what} ${show(value)}:`) } : {}) };
  }
  const colons = (v.match(/:/g) ?? []).length;
  if (colons > 1) throw bad('an IPv6 address must be written in brackets, e.g. [2001:db8::1]:3389');
  if (colons === 1) [host, portText] = v.split(':') as [string, string];
  const port = portText !== undefined ? validatePort(portText, `port in ${what} ${show(value)}:`) : undefined;
  if (isIP(host) === 4) return { host, family: 4, ...(port ? { port } : {}) };
  if (/^[0-9.]+$/.test(host)) throw bad('not a valid IPv4 address');
  if (!isDnsName(host)) throw bad('not a valid DNS name (letters, digits, hyphens; labels of 1-63 characters)');
  return { host, family: 0, ...(port ? { port } : {}) };
}

/** Format host and port for display and for connection targets ("[::1]:3389"). */
export function formatHostPort(h: { host: string; port?: number }, defaultPort = 3389): string {
  const host = isIP(h.host) === 6 ? `[${h.host}]` : h.host;
  return `${host}:${h.port ?? defaultPort}`;
}

export function validatePort(value: string | number, what = 'port'): number {
  const s = String(value ?? '').trim();
  if (!/^[0-9]{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    throw new UsageError(`invalid ${what} ${show(value)}: expected a whole number from 1 to 65535`);
  }
  return Number(s);
}

export function validateMtu(value: string | number, family: 4 | 6 = 4): number {
  const s = String(value ?? '').trim();
  const min = family === 6 ? 1280 : 576;
  if (!/^[0-9]{3,4}$/.test(s) || Number(s) < min || Number(s) > 9000) {
    throw new UsageError(`invalid MTU ${show(value)}: expected a whole number from ${min} to 9000 for IPv${family}`);
  }
  return Number(s);
}

/** Generic positive integer in a range (counts, timeouts, intervals). */
export function validateInt(value: string | number, what: string, min: number, max: number): number {
  const s = String(value ?? '').trim();
  if (!/^[0-9]+$/.test(s) || Number(s) < min || Number(s) > max) {
    throw new UsageError(`invalid ${what} ${show(value)}: expected a whole number from ${min} to ${max}`);
  }
  return Number(s);
}

/**
 * Interface alias. Windows aliases may contain spaces and punctuation ("vEthernet (Default
 * Switch)", "Local Area Connection* 12"), so we allow a conservative set and always quote.
 * Linux/macOS names are checked by the platform rule (no spaces or '/', at most 15 bytes).
 */
export function validateInterface(value: string, platform: NodeJS.Platform | 'windows' = 'windows'): string {
  const v = String(value ?? '');
  const bad = (why: string) => new UsageError(`invalid interface ${show(value)}: ${why}`);
  if (!v.trim()) throw bad('it is empty');
  if (platform === 'windows' || platform === 'win32') {
    if (v.length > 256) throw bad('longer than 256 characters');
    if (v !== v.trim()) throw bad('leading or trailing spaces');
    if (!/^[\p{L}\p{N} _.,()#*+:@\[\]{}\-]+$/u.test(v)) {
      throw bad('only letters, digits, spaces and _ . , ( ) # * + : @ [ ] { } - are allowed');
    }
    return v;
  }
  if (Buffer.byteLength(v) > 15 || !/^[A-Za-z0-9_.:\-@]+$/.test(v)) {
    throw bad('expected a name of at most 15 characters from letters, digits and _ . : - @');
  }
  return v;
}

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Azure subscription: an ID (GUID) or a display name without '/' or control characters. */
export function validateAzureSubscription(value: string): string {
  const v = String(value ?? '');
  if (GUID.test(v)) return v;
  if (/^[\p{L}\p{N} _.()\-]{1,64}$/u.test(v) && v === v.trim()) return v;
  throw new UsageError(`invalid Azure subscription ${show(value)}: expected a subscription ID (GUID) or a name of letters, digits, spaces and _ . ( ) -`);
}

/** Azure resource group: 1-90 of letters, digits, _ . ( ) -, not ending in a period. */
export function validateAzureResourceGroup(value: string): string {
  const v = String(value ?? '');
  if (/^[\p{L}\p{N}_.()\-]{1,90}$/u.test(v) && !v.endsWith('.')) return v;
  throw new UsageError(`invalid Azure resource group ${show(value)}: expected 1-90 letters, digits, _ . ( ) -, not ending in '.'`);
}

/** Azure VM name: 1-64 of letters, digits, _ . -; not starting with _ nor ending in . or -. */
export function validateAzureVmName(value: string): string {
  const v = String(value ?? '');
  if (/^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$/.test(v) && !/[.\-]$/.test(v)) return v;
  throw new UsageError(`invalid Azure VM name ${show(value)}: expected 1-64 letters, digits, _ . -, starting with a letter or digit, not ending in . or -`);
}

/**
 * A Windows path on the target (backup folders and the like): absolute (drive or UNC), no control
 * characters, none of  " < > | ? *, at most 260 characters, no '..' segments.
 */
export function validateWindowsPath(value: string, what = 'path'): string {
  const v = String(value ?? '');
  const bad = (why: string) => new UsageError(`invalid ${what} ${show(value)}: ${why}`);
  if (!/^(?:[A-Za-z]:\\|\\\\[^\\]+\\[^\\]+)/.test(v)) throw bad('expected an absolute Windows path like C:\\ProgramData\\rdpfix');
  if (v.length > 260) throw bad('longer than 260 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f"<>|?*]/.test(v) || /:/.test(v.slice(2))) throw bad('contains a character Windows does not allow in paths');
  if (v.split('\\').includes('..')) throw bad("'..' segments are not allowed");
  return v;
}

/** A local path (journal directory, hosts file): any non-empty string without NUL or newline. */
export function validateLocalPath(value: string, what = 'path'): string {
  const v = String(value ?? '');
  // eslint-disable-next-line no-control-regex
  if (!v || /[\u0000\r\n]/.test(v) || v.length > 4096) {
    throw new UsageError(`invalid ${what} ${show(value)}: expected a file or folder path without NUL or newline characters`);
  }
  return v;
}

/** A certificate thumbprint as Windows shows it: 40 hex digits (spaces and colons tolerated). */
export function validateThumbprint(value: string): string {
  const v = String(value ?? '').replace(/[\s:]/g, '').toUpperCase();
  if (!/^[0-9A-F]{40}$/.test(v)) throw new UsageError(`invalid thumbprint ${show(value)}: expected 40 hexadecimal digits (SHA-1)`);
  return v;
}

/** Durations like 90s, 30m, 2h, 1d, 1h30m → seconds (1 minute to 30 days). */
export function validateDuration(value: string, what = 'duration'): number {
  const v = String(value ?? '').trim();
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v);
  const secs = m && v ? Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0) : NaN;
  if (!Number.isFinite(secs) || secs < 60 || secs > 30 * 86400) {
    throw new UsageError(`invalid ${what} ${show(value)}: expected e.g. 30m, 2h, 1d or 1h30m, between 1 minute and 30 days`);
  }
  return secs;
}
