// Security descriptors in SDDL form, as `Get-Acl`/.NET return them, turned into decisions: can
// NETWORK SERVICE read this key container, does a container carry the ACEs its Windows build
// ships with, is the MachineKeys folder still at its default. The generated PowerShell only reads
// and reports SDDL strings; these judgements are made here, where they are tested against
// recorded descriptors (test/fixtures/inspect-server/).
//
// Rules (after the measurements in Azure/repair-script-library win-fix-rdp-certificate.ps1):
// - Grants are accumulated across ACEs for the same SID: Windows may split one grant in two.
// - Any deny ACE that overlaps the mask wins, whatever its position (hardening baselines often
//   "remove Everyone" by adding a deny).
// - Conditional/callback and object ACEs are not counted as grants (their condition cannot be
//   evaluated here), but their deny forms are counted as denies.

/** Well-known SIDs (never account names: those are localised and fail on non-English Windows). */
export const SID = {
  system: 'S-1-5-18',
  localService: 'S-1-5-19',
  networkService: 'S-1-5-20',
  administrators: 'S-1-5-32-544',
  users: 'S-1-5-32-545',
  everyone: 'S-1-1-0',
  authenticatedUsers: 'S-1-5-11',
  service: 'S-1-5-6',
  creatorOwner: 'S-1-3-0',
} as const;

const ALIASES: Record<string, string> = {
  SY: SID.system,
  LS: SID.localService,
  NS: SID.networkService,
  BA: SID.administrators,
  BU: SID.users,
  WD: SID.everyone,
  AU: SID.authenticatedUsers,
  SU: SID.service,
  CO: SID.creatorOwner,
  CG: 'S-1-3-1',
  OW: 'S-1-3-4',
  AN: 'S-1-5-7',
  IU: 'S-1-5-4',
  NU: 'S-1-5-2',
  BG: 'S-1-5-32-546',
  PU: 'S-1-5-32-547',
  BO: 'S-1-5-32-551',
  SO: 'S-1-5-32-549',
  AO: 'S-1-5-32-548',
  RD: 'S-1-5-32-555',
  RU: 'S-1-5-32-554',
  NO: 'S-1-5-32-556',
  IS: 'S-1-5-32-568',
  AC: 'S-1-15-2-1',
  PS: 'S-1-5-10',
  RC: 'S-1-5-12',
  WR: 'S-1-5-33',
  ED: 'S-1-5-9',
};

/** File access masks as Windows writes them in SDDL. */
export const MASK = {
  fullControl: 0x1f01ff,
  /** FILE_GENERIC_READ, what icacls calls (R) and a CSP needs to open a key file. */
  read: 0x120089,
  /** What Everyone holds on the default MachineKeys folder: read plus create-file. */
  folderEveryone: 0x12019f,
} as const;

const RIGHTS: Record<string, number> = {
  GA: 0x10000000,
  GR: 0x80000000,
  GW: 0x40000000,
  GX: 0x20000000,
  RC: 0x00020000,
  SD: 0x00010000,
  WD: 0x00040000,
  WO: 0x00080000,
  RP: 0x00000010,
  WP: 0x00000020,
  CC: 0x00000001,
  DC: 0x00000002,
  LC: 0x00000004,
  SW: 0x00000008,
  LO: 0x00000080,
  DT: 0x00000040,
  CR: 0x00000100,
  FA: 0x001f01ff,
  FR: 0x00120089,
  FW: 0x00120116,
  FX: 0x001200a0,
  KA: 0x000f003f,
  KR: 0x00020019,
  KW: 0x00020006,
  KX: 0x00020019,
};

/** Generic rights mapped to file rights (how the file system reads GA/GR/GW/GX). */
function mapGeneric(mask: number): number {
  let m = mask >>> 0;
  const g = (bit: number, to: number) => {
    if (m & bit) m = ((m & ~bit) | to) >>> 0;
  };
  g(0x10000000, RIGHTS.FA!);
  g(0x80000000, RIGHTS.FR!);
  g(0x40000000, RIGHTS.FW!);
  g(0x20000000, RIGHTS.FX!);
  return m >>> 0;
}

export interface Ace {
  /** 'allow' and 'deny' are the plain forms; 'other' covers object, callback and audit ACEs. */
  kind: 'allow' | 'deny' | 'other';
  /** The SDDL type token (A, D, OA, XA, XD, ...). */
  type: string;
  flags: string;
  inherited: boolean;
  mask: number;
  sid: string;
}

export interface SecurityDescriptor {
  owner: string | null;
  group: string | null;
  /** DACL control flags, e.g. 'PAI' (protected, auto-inherited). */
  daclFlags: string;
  aces: Ace[];
  /** True when the DACL is absent (NULL DACL: everyone has full access) — never seen on a key. */
  nullDacl: boolean;
}

export function normalizeSid(s: string): string {
  const t = s.trim();
  if (ALIASES[t.toUpperCase()]) return ALIASES[t.toUpperCase()]!;
  return t.toUpperCase();
}

function parseMask(text: string): number {
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t.slice(2), 16) >>> 0;
  if (/^[0-9]+$/.test(t)) return Number(t) >>> 0;
  let mask = 0;
  for (let i = 0; i < t.length; i += 2) {
    const r = RIGHTS[t.slice(i, i + 2).toUpperCase()];
    if (r === undefined) throw new Error(`unknown right ${JSON.stringify(t.slice(i, i + 2))} in ${JSON.stringify(t)}`);
    mask = (mask | r) >>> 0;
  }
  return mask;
}

/** Parse an SDDL string (owner, group, DACL; a SACL is ignored). Throws on malformed text. */
export function parseSddl(sddl: string): SecurityDescriptor {
  const s = String(sddl ?? '').trim();
  if (!s) throw new Error('empty SDDL');
  const sd: SecurityDescriptor = { owner: null, group: null, daclFlags: '', aces: [], nullDacl: true };
  // Sections O:, G:, D:, S: in order; ACE strings sit in parentheses and may contain ':'.
  const sections: Array<[string, string]> = [];
  let i = 0;
  while (i < s.length) {
    const tag = s[i]!.toUpperCase();
    if (!'OGDS'.includes(tag) || s[i + 1] !== ':') throw new Error(`malformed SDDL near ${JSON.stringify(s.slice(i, i + 30))}`);
    let j = i + 2;
    let depth = 0;
    while (j < s.length) {
      const c = s[j]!;
      if (c === '(') depth++;
      else if (c === ')') depth--;
      else if (depth === 0 && 'OGDS'.includes(c.toUpperCase()) && s[j + 1] === ':') break;
      if (depth < 0) throw new Error('malformed SDDL: unbalanced parentheses');
      j++;
    }
    if (depth !== 0) throw new Error('malformed SDDL: unbalanced parentheses');
    sections.push([tag, s.slice(i + 2, j)]);
    i = j;
  }
  for (const [tag, body] of sections) {
    if (tag === 'O') sd.owner = normalizeSid(body);
    else if (tag === 'G') sd.group = normalizeSid(body);
    else if (tag === 'D') {
      const open = body.indexOf('(');
      sd.daclFlags = (open < 0 ? body : body.slice(0, open)).trim().toUpperCase();
      if (open >= 0 && !/^(?:\([^()]*\))*$/.test(body.slice(open))) throw new Error(`malformed DACL ${JSON.stringify(body.slice(0, 60))}`);
      sd.aces = [...body.matchAll(/\(([^)]*)\)/g)].map((x) => parseAce(x[1]!));
      sd.nullDacl = sd.daclFlags.includes('NO_ACCESS_CONTROL');
    }
  }
  if (!sections.some(([t]) => t === 'D')) sd.nullDacl = true;
  return sd;
}

function parseAce(text: string): Ace {
  const parts = text.split(';');
  if (parts.length < 6) throw new Error(`malformed ACE (${text})`);
  const [type = '', flags = '', rights = ''] = parts;
  const sid = parts[5] ?? '';
  const t = type.toUpperCase();
  const kind: Ace['kind'] = t === 'A' ? 'allow' : t === 'D' || t === 'OD' || t === 'XD' || t === 'ZD' ? 'deny' : 'other';
  return { kind, type: t, flags: flags.toUpperCase(), inherited: /ID/.test(flags.toUpperCase()), mask: mapGeneric(parseMask(rights)), sid: normalizeSid(sid) };
}

export interface AccessCheck {
  granted: boolean;
  denied: boolean;
  /** Union of allowed bits for the SIDs asked about. */
  allowed: number;
}

/**
 * Whether the SIDs (one principal and the groups it belongs to) are granted every bit of `mask`
 * and not denied any of it. Grants accumulate across ACEs; any overlapping deny wins.
 */
export function checkAccess(sd: SecurityDescriptor, sids: readonly string[], mask: number): AccessCheck {
  if (sd.nullDacl) return { granted: true, denied: false, allowed: 0xffffffff };
  const want = new Set(sids.map(normalizeSid));
  let allowed = 0;
  let denied = false;
  for (const ace of sd.aces) {
    if (!want.has(ace.sid)) continue;
    if (ace.kind === 'deny' && (ace.mask & mask) !== 0) denied = true;
    if (ace.kind === 'allow') allowed = (allowed | ace.mask) >>> 0;
  }
  return { granted: ((allowed & mask) >>> 0) === mask >>> 0, denied, allowed };
}

/** The groups NETWORK SERVICE's token carries that a key ACL might name. */
export const NETWORK_SERVICE_TOKEN = [SID.networkService, SID.everyone, SID.authenticatedUsers, SID.service, SID.users] as const;

/** Can TermService (running as NETWORK SERVICE) open this key container for reading? */
export function networkServiceCanRead(sddl: string): boolean {
  const sd = parseSddl(sddl);
  const c = checkAccess(sd, NETWORK_SERVICE_TOKEN, MASK.read);
  return c.granted && !c.denied;
}

export interface ExpectedAce {
  sid: string;
  mask: number;
  /** How icacls writes the grant: '*S-1-5-18:(F)'. */
  icacls: string;
  who: string;
}

export interface AceComparison {
  sid: string;
  who: string;
  state: 'ok' | 'missing' | 'denied';
}

export interface ContainerAclCheck {
  /** Every expected ACE present and none denied, owner SYSTEM. */
  matches: boolean;
  networkServiceCanRead: boolean;
  owner: string | null;
  aces: AceComparison[];
  /** Explicit ACEs for SIDs outside the expected set (kept by the repair; reported). */
  extra: string[];
}

/** Compare a key container's descriptor with the ACEs its build ships with. */
export function compareContainerAcl(sddl: string, expected: readonly ExpectedAce[]): ContainerAclCheck {
  const sd = parseSddl(sddl);
  const aces: AceComparison[] = expected.map((e) => {
    const c = checkAccess(sd, [e.sid], e.mask);
    return { sid: e.sid, who: e.who, state: c.denied ? 'denied' : c.granted ? 'ok' : 'missing' };
  });
  const known = new Set(expected.map((e) => normalizeSid(e.sid)));
  const extra = [...new Set(sd.aces.filter((a) => a.kind === 'allow' && !known.has(a.sid)).map((a) => a.sid))];
  const nsRead = checkAccess(sd, NETWORK_SERVICE_TOKEN, MASK.read);
  return {
    matches: aces.every((a) => a.state === 'ok') && sd.owner === SID.system,
    networkServiceCanRead: nsRead.granted && !nsRead.denied,
    owner: sd.owner,
    aces,
    extra,
  };
}

function aceKey(a: Ace): string {
  return `${a.type}|${a.flags.replace(/ID/g, '')}|${a.mask}|${a.sid}`;
}

/**
 * Same owner and same DACL (protection flag and the set of ACEs, compared by meaning: 'FA' and
 * '0x1f01ff' are the same grant). The group is ignored: Windows does not use it for access.
 */
export function sameSecurity(a: string, b: string): boolean {
  const x = parseSddl(a);
  const y = parseSddl(b);
  const prot = (f: string) => f.includes('P');
  const set = (sd: SecurityDescriptor) => sd.aces.map(aceKey).sort().join(',');
  return x.owner === y.owner && prot(x.daclFlags) === prot(y.daclFlags) && set(x) === set(y);
}

/** The owner SID of an SDDL string, in S-1-... form (for `icacls /setowner *SID`). */
export function ownerOf(sddl: string): string | null {
  return parseSddl(sddl).owner;
}

/** Is this an SDDL string we can parse? (Values from the target are validated before reuse.) */
export function isSddl(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 4096 || !/^[OGDS]:/.test(value)) return false;
  try {
    parseSddl(value);
    return true;
  } catch {
    return false;
  }
}
