// server-facts: the decisions about a server's raw facts that several steps share. inspect-server
// turns all facts into findings; toggle-nla reads the effective security settings; clear-machinekeys
// and restart-termserv read the key findings and the certificate/event shapes. The PowerShell that
// collects these facts is scripts/ps/facts.ps1 and scripts/ps/inspect-server.ps1; the shapes are
// described in test/fixtures/inspect-server/README.md and docs/windows-reference.md.
import type { Cause } from './causes.ts';
import { compareContainerAcl, networkServiceCanRead, sameSecurity, SID, isSddl } from './sddl.ts';
import { DEFAULT_MACHINEKEYS_SDDL, expectedContainerAces } from './server-ps.ts';
import { asArray, dword } from './server-step.ts';

// ---------------------------------------------------------------- types

export type Severity = 'problem' | 'warning' | 'info';

export interface Finding {
  cause: Cause;
  severity: Severity;
  detail: string;
  /** The exact command that fixes it, or null when the fix is manual (see `manual`). */
  fix: string | null;
  manual?: string;
}

/** What the generated script returns (PowerShell shapes: see test/fixtures/inspect-server/README.md). */
export interface ServerFacts {
  computer?: string;
  now?: string;
  build?: number;
  product?: string;
  runAs?: string;
  port?: number;
  services?: unknown;
  termServicePid?: number | null;
  terminalServer?: Record<string, unknown>;
  rdpTcp?: Record<string, unknown>;
  policy?: Record<string, unknown>;
  listeners?: unknown;
  firewall?: unknown;
  schannel?: Record<string, Record<string, unknown>>;
  certificate?: CertificateFacts;
  machineKeys?: { path?: string; sddl?: string | null; containers?: unknown; error?: string | null };
  sessionEnvSid?: string | null;
  events?: EventFacts;
  evidenceFile?: string | null;
  /** The in-server handshake check (scripts/ps/handshake.ps1): a cause name of diagnose, or not-checked. */
  handshake?: { cause?: string; detail?: string } | null;
}

export interface CertificateFacts {
  pinned?: string | null;
  source?: 'pinned' | 'pinned-missing' | 'remote-desktop-store' | 'none';
  thumbprint?: string | null;
  selfSigned?: boolean | null;
  store?: unknown;
  inUse?: CertSummary | null;
  key?: KeyFacts | null;
}

export interface CertSummary {
  Thumbprint: string;
  Subject?: string;
  Issuer?: string;
  NotBefore?: string;
  NotAfter?: string;
  HasPrivateKey?: boolean;
}

export interface KeyFacts {
  opened?: boolean;
  provider?: string | null;
  file?: string | null;
  sddl?: string | null;
  error?: string | null;
}

export interface EventFacts {
  since?: string;
  counts?: Record<string, number>;
  newest?: unknown;
  errors?: unknown;
}

export interface EventRecord {
  Id: number;
  ProviderName?: string;
  TimeCreated?: string;
  Message?: string;
}

export interface Setting {
  value: number | null;
  source: 'policy' | 'local' | 'unset';
}

export interface EffectiveSecurity {
  UserAuthentication: Setting;
  SecurityLayer: Setting;
  MinEncryptionLevel: Setting;
  fDenyTSConnections: Setting;
}

// ---------------------------------------------------------------- decisions

/** SecurityLayer values in words, by value. */
export const LAYER_NAME = ['RDP security (0)', 'Negotiate (1)', 'TLS (2)'];

/** Group Policy values win over the local RDP-Tcp values when they are set. */
export function effectiveSecurity(rdpTcp: unknown, policy: unknown, terminalServer?: unknown): EffectiveSecurity {
  const pick = (name: string, local: unknown): Setting => {
    const p = dword(policy, name);
    if (p !== undefined) return { value: p, source: 'policy' };
    const l = dword(local, name);
    return l !== undefined ? { value: l, source: 'local' } : { value: null, source: 'unset' };
  };
  return {
    UserAuthentication: pick('UserAuthentication', rdpTcp),
    SecurityLayer: pick('SecurityLayer', rdpTcp),
    MinEncryptionLevel: pick('MinEncryptionLevel', rdpTcp),
    fDenyTSConnections: pick('fDenyTSConnections', terminalServer),
  };
}

/** Is this SecurityLayer / MinEncryptionLevel pair one Windows accepts? (docs/windows-reference.md) */
export function combinationProblem(securityLayer: number | null, minEncryptionLevel: number | null): string | null {
  if (securityLayer !== null && ![0, 1, 2].includes(securityLayer)) return `SecurityLayer ${securityLayer} is out of range (valid: 0 RDP, 1 Negotiate, 2 TLS)`;
  if (minEncryptionLevel !== null && ![1, 2, 3, 4].includes(minEncryptionLevel)) return `MinEncryptionLevel ${minEncryptionLevel} is out of range (valid: 1 to 4)`;
  if (securityLayer === 2 && minEncryptionLevel === 1) return 'SecurityLayer 2 (TLS) is not valid with MinEncryptionLevel 1 (Low)';
  return null;
}

/** Where a setting comes from, in words. */
export const sourceText = (s: Setting) => (s.source === 'policy' ? 'set by Group Policy' : s.source === 'local' ? 'local setting' : 'not set');

/** Evidence about the RDP key, shared with clear-machinekeys (its trigger is these findings). */
export interface KeyEvidenceInput {
  build?: number;
  runAs?: string;
  folderSddl?: string | null;
  containers?: unknown;
  key?: KeyFacts | null;
  hasPrivateKey?: boolean | null;
  eventCounts?: Record<string, number>;
}

/** Findings about the key, its ACLs and the events that name them (cause certificate-key-unusable). */
export function keyFindings(k: KeyEvidenceInput, fix: (args: string[]) => string): Finding[] {
  const out: Finding[] = [];
  const clear = fix([]);
  const counts = k.eventCounts ?? {};
  const n = (id: number) => counts[String(id)] ?? 0;
  const problem = (detail: string, f: string | null = clear): Finding => ({ cause: 'certificate-key-unusable', severity: 'problem', detail, fix: f });

  if (k.key?.sddl && isSddl(k.key.sddl) && !networkServiceCanRead(k.key.sddl)) {
    out.push(problem(`NETWORK SERVICE (TermService) cannot read the key container ${k.key.file ?? ''}`.trim()));
  }
  if (k.key && k.key.opened === false && k.runAs === SID.system && k.key.error) {
    out.push(problem(`the private key cannot be opened even as SYSTEM: ${k.key.error}`));
  }
  if (k.hasPrivateKey && k.key && !k.key.file && k.key.opened === false) {
    out.push(problem('the certificate says it has a private key, but its key container file was not found'));
  }
  const seen = new Set([k.key?.file?.split('\\').at(-1)]);
  for (const c of asArray<{ name?: string; sddl?: string | null }>(k.containers)) {
    if (!c?.name || seen.has(c.name)) continue;
    if (c.sddl && isSddl(c.sddl) && !networkServiceCanRead(c.sddl)) out.push(problem(`NETWORK SERVICE cannot read the RDP key container ${c.name}`));
  }
  if (n(36870)) out.push(problem(`Schannel 36870 ×${n(36870)}: cannot access the TLS server credential's private key`));
  if (n(36871)) out.push(problem(`Schannel 36871 ×${n(36871)}: fatal error creating the TLS server credential`));
  if (n(1057)) out.push(problem(`RemoteConnectionManager 1057 ×${n(1057)}: could not create a new self-signed certificate`));
  if (n(1058)) out.push(problem(`RemoteConnectionManager 1058 ×${n(1058)}: could not replace the expired self-signed certificate`));
  if (n(1055)) out.push(problem(`RemoteConnectionManager 1055 ×${n(1055)}: cannot access the private key of the configured certificate`));
  if (k.folderSddl && isSddl(k.folderSddl) && !sameSecurity(k.folderSddl, DEFAULT_MACHINEKEYS_SDDL)) {
    out.push({
      cause: 'certificate-key-unusable',
      severity: 'warning',
      detail: `the MachineKeys folder ACL differs from the default (${k.folderSddl}); keys Windows creates next may be unreadable`,
      fix: clear,
    });
  }
  if (k.key?.sddl && isSddl(k.key.sddl) && k.build) {
    const cmp = compareContainerAcl(k.key.sddl, expectedContainerAces(k.build));
    const off = cmp.aces.filter((a) => a.state !== 'ok').map((a) => `${a.who} ${a.state}`);
    if (off.length && networkServiceCanRead(k.key.sddl)) {
      out.push({ cause: 'certificate-key-unusable', severity: 'info', detail: `the key container ACL differs from what build ${k.build} ships with (${off.join(', ')})`, fix: null });
    }
  }
  return out;
}
