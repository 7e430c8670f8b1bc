// One validator per kind of value. Each returns the normalised value or throws a UsageError that
// names the value and says what is allowed (exit 2, nothing run). Validation is the first line of
// defence; quoting (lib/ps.ts psQuote) is the second and is applied regardless.
import { isIP } from 'node:net';
import { UsageError } from './errors.ts';

// ------------------------------------------------------------------ showing what the user typed

/** Names of the invisible characters a copy from a dialog or a web page most often carries. */
const INVISIBLE_NAMES: Record<number, string> = {
  0x00a0: 'NO-BREAK SPACE',
  0x00ad: 'SOFT HYPHEN',
  0x200b: 'ZERO WIDTH SPACE',
  0x200c: 'ZERO WIDTH NON-JOINER',
  0x200d: 'ZERO WIDTH JOINER',
  0x200e: 'LEFT-TO-RIGHT MARK',
  0x200f: 'RIGHT-TO-LEFT MARK',
  0x202a: 'LEFT-TO-RIGHT EMBEDDING',
  0x202b: 'RIGHT-TO-LEFT EMBEDDING',
  0x202c: 'POP DIRECTIONAL FORMATTING',
  0x202d: 'LEFT-TO-RIGHT OVERRIDE',
  0x202e: 'RIGHT-TO-LEFT OVERRIDE',
  0x202f: 'NARROW NO-BREAK SPACE',
  0x2060: 'WORD JOINER',
  0x2066: 'LEFT-TO-RIGHT ISOLATE',
  0x2067: 'RIGHT-TO-LEFT ISOLATE',
  0x2068: 'FIRST STRONG ISOLATE',
  0x2069: 'POP DIRECTIONAL ISOLATE',
  0x3000: 'IDEOGRAPHIC SPACE',
  0xfeff: 'ZERO WIDTH NO-BREAK SPACE (BOM)',
};

/**
 * Characters a reader cannot see or tell from a plain space: controls (Cc), format characters (Cf:
 * U+200E and friends, U+FEFF), separators other than the ASCII space (Z), and unassigned or private
 * code points. An ASCII tab or newline counts too: in a single value it is never intended.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Z}\p{Co}\p{Cn}]/gu;

const codePoint = (ch: string) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

/** "U+200E LEFT-TO-RIGHT MARK at position 1" for each invisible character (1-based positions). */
export function invisibleCharacters(value: string): string[] {
  const out: string[] = [];
  let pos = 0;
  for (const ch of String(value)) {
    pos++;
    if (ch === ' ' || !new RegExp(INVISIBLE.source, 'u').test(ch)) continue;
    const name = INVISIBLE_NAMES[ch.codePointAt(0)!] ?? (ch === '\t' ? 'TAB' : ch === '\n' ? 'LINE FEED' : ch === '\r' ? 'CARRIAGE RETURN' : undefined);
    out.push(`${codePoint(ch)}${name ? ` ${name}` : ''} at position ${pos}`);
  }
  return out;
}

/**
 * The value as the user typed it, quoted, with every invisible character written as \uXXXX so it
 * shows, and named after it: `"\u200e3a5f..." (contains the invisible U+200E LEFT-TO-RIGHT MARK at
 * position 1)`. Long values are cut at 100 characters.
 */
export function show(value: unknown): string {
  const s = String(value);
  const chars = [...s];
  const cut = chars.length > 100 ? chars.slice(0, 100).join('') : s;
  const quoted = JSON.stringify(cut).replace(INVISIBLE, (ch) => (ch === ' ' ? ch : ch.length === 1 ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : `\\u{${ch.codePointAt(0)!.toString(16)}}`));
  const inv = invisibleCharacters(s);
  const note = inv.length ? ` (contains the invisible ${inv.slice(0, 3).join(', ')}${inv.length > 3 ? ` and ${inv.length - 3} more` : ''})` : '';
  return `${chars.length > 100 ? `${quoted.slice(0, -1)}…"` : quoted}${note}`;
}

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
  const numeric = inetAton(host);
  if (numeric !== null) {
    // ping, ssh and the C library read 0x7f000001, 2130706433, 0177.0.0.1 and 127.1 as 127.0.0.1;
    // Node, .NET and mstsc do not. One rule for every script: only dotted decimal is an address.
    throw bad(`a numeric IPv4 form (hex, octal or fewer than four parts) that ping and ssh read as ${numeric} but RDP clients do not; write it in dotted decimal: ${numeric}`);
  }
  if (/^[0-9.]+$/.test(host) || /\.(?:[0-9]+|0x[0-9a-f]*)$/i.test(host) || /^(?:[0-9]+|0x[0-9a-f]*)$/i.test(host)) throw bad('not a valid IPv4 address (expected four numbers from 0 to 255, e.g. 10.0.0.4)');
  if (!isDnsName(host)) throw bad('not a valid DNS name (letters, digits, hyphens; labels of 1-63 characters)');
  return { host, family: 0, ...(port ? { port } : {}) };
}

/**
 * The dotted-decimal address inet_aton(3) would make of a numeric host other than plain dotted
 * decimal (hex, octal, or fewer than four parts), or null when it is not such a form.
 */
export function inetAton(host: string): string | null {
  const parts = host.split('.');
  if (parts.length > 4 || !parts.every((p) => /^(?:0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$/i.test(p))) return null;
  if (isIP(host) === 4) return null;
  const nums = parts.map((p) => (/^0x/i.test(p) ? (p.length > 2 ? parseInt(p.slice(2), 16) : 0) : p.length > 1 && p.startsWith('0') ? parseInt(p, 8) : Number(p)));
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 2 ** (8 * (4 - nums.length))) return null;
  let v = last;
  nums.forEach((n, i) => (v += n * 2 ** (8 * (3 - i))));
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
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

/**
 * The MTU ranges. 'set': what a user may ask for (576, or 1280 for IPv6, up to 9000 jumbo frames),
 * which keeps a typo like 14000 or 140 from cutting a machine off. 'found': what the system itself
 * reports or a probe measured, and so what an undo puts back: any MTU an interface can have, from
 * the IPv4 minimum 68 (IPv6 1280) to 65536 (Linux loopback).
 */
export const MTU_RANGE = { set: { 4: [576, 9000], 6: [1280, 9000] }, found: { 4: [68, 65536], 6: [1280, 65536] } } as const;

export function validateMtu(value: string | number, family: 4 | 6 = 4, origin: 'set' | 'found' = 'set'): number {
  const s = String(value ?? '').trim();
  const [min, max] = MTU_RANGE[origin][family];
  if (!/^[0-9]{2,5}$/.test(s) || Number(s) < min || Number(s) > max) {
    throw new UsageError(`invalid MTU ${show(value)}: expected a whole number from ${min} to ${max} for IPv${family}`);
  }
  return Number(s);
}

/** Generic positive integer in a range (counts, timeouts, intervals). */
export function validateInt(value: string | number, what: string, min: number, max: number): number {
  const s = String(value ?? '').trim();
  if (!/^[0-9]+$/.test(s) || Number(s) < min || Number(s) > max) {
    // A number that is not finite was a text once: the caller converted too early, and "NaN" would
    // name something the user never typed.
    const typed = typeof value === 'number' && !Number.isFinite(value) ? 'that is not a number' : show(value);
    const why = !s ? 'it is empty' : /^-[0-9]+$/.test(s) ? 'negative' : /^[0-9]+$/.test(s) ? 'out of range' : 'not a whole number';
    throw new UsageError(`invalid ${what} ${typed}: ${why}; expected a whole number from ${min} to ${max}`);
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

/**
 * A certificate thumbprint as Windows shows it: 40 hex digits. Spaces, colons and invisible format
 * characters are dropped: the Details tab of certlm.msc copies the value with a leading U+200E
 * LEFT-TO-RIGHT MARK, and other dialogs with no-break spaces or a BOM.
 */
export function validateThumbprint(value: string): string {
  const v = String(value ?? '').replace(/[\s:\p{Cf}]/gu, '').toUpperCase();
  if (!/^[0-9A-F]{40}$/.test(v)) {
    const other = [...v].filter((c) => !/[0-9A-F]/.test(c));
    const why = other.length ? `${other.length} character(s) that are not hexadecimal digits` : `${v.length} hexadecimal digits`;
    throw new UsageError(`invalid thumbprint ${show(value)}: ${why}; expected 40 hexadecimal digits (SHA-1)`);
  }
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
