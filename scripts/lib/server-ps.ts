// Shared server-side facts for inspect-server, restart-termserv, clear-machinekeys and toggle-nla:
// the registry paths, SIDs and per-build key ACLs in one place (their sources are in
// docs/windows-reference.md). The PowerShell that uses them lives in scripts/ps/*.ps1; where a
// .ps1 file writes one of these paths as a literal, a test checks it against the constant here.
import { createHash } from 'node:crypto';
import { MASK, SID, type ExpectedAce } from './sddl.ts';

export const TS_KEY = 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server';
export const RDP_TCP_KEY = 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp';
/** Group Policy copies: when a value is set here it wins over the local one. */
export const POLICY_KEY = 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services';
export const SCHANNEL_KEY = 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols';
export const RD_STORE = 'Cert:\\LocalMachine\\Remote Desktop';
/** The Remote Desktop store is a registry store; one subkey per certificate (reg export-able). */
export const RD_STORE_REG = 'HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\Remote Desktop\\Certificates';
/** The listener's own key container (TSSecKeySet1) is MachineKeys\<this><MachineGuid> on every build measured. */
export const RDP_CONTAINER_PREFIX = 'f686aace6942fb7f7ceb231212eef4a4_';
/** Default MachineKeys folder descriptor (vmassist; RSL measured it on 2012 R2 to 2025 and Windows 11). */
export const DEFAULT_MACHINEKEYS_SDDL = 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)';
/** The Remote Desktop firewall rule group, by its resource string (display names are localised). */
export const RDP_FIREWALL_GROUP = '@FirewallAPI.dll,-28752';
export const REENABLE_TASK = 'rdpfix-reenable-nla';

/**
 * A service SID (NT SERVICE\<name>): S-1-5-80- followed by the SHA-1 of the upper-case service name
 * in UTF-16LE, read as five little-endian 32-bit numbers. Derived from the name, so it is the same
 * on every installation and in every language — no lookup that could fail on a localised system.
 */
export function serviceSid(name: string): string {
  const h = createHash('sha1').update(Buffer.from(name.toUpperCase(), 'utf16le')).digest();
  return `S-1-5-80-${[0, 4, 8, 12, 16].map((o) => h.readUInt32LE(o)).join('-')}`;
}

export const SESSIONENV_SID = serviceSid('SessionEnv');

const ace = (sid: string, mask: number, perm: 'F' | 'R', who: string): ExpectedAce => ({ sid, mask, icacls: `*${sid}:(${perm})`, who });

/**
 * The ACEs the RDP key container carries on a build (docs/windows-reference.md, measured by RSL): SYSTEM Full
 * and NETWORK SERVICE Read everywhere; Administrators Read up to 14393; NT SERVICE\SessionEnv Full
 * from 17763. Builds in between were not measured: they get both third entries, a superset that
 * keeps whichever service writes the key working and grants nothing broad.
 */
export function expectedContainerAces(build: number): ExpectedAce[] {
  const base = [ace(SID.system, MASK.fullControl, 'F', 'SYSTEM'), ace(SID.networkService, MASK.read, 'R', 'NETWORK SERVICE')];
  const admins = ace(SID.administrators, MASK.read, 'R', 'Administrators');
  const sessionEnv = ace(SESSIONENV_SID, MASK.fullControl, 'F', 'NT SERVICE\\SessionEnv');
  if (build <= 14393) return [...base, admins];
  if (build >= 17763) return [...base, sessionEnv];
  return [...base, admins, sessionEnv];
}

export type AceParam = {
  sid: string;
  mask: number;
  grant: string;
};

const asParam = (a: ExpectedAce): AceParam => ({ sid: a.sid, mask: a.mask, grant: a.icacls });

/**
 * The per-build table as data for the generated script ($P.AceSets), so PowerShell only looks it
 * up: `listener` sets by build band for the RDP listener's own containers, `other` for the key of a
 * pinned (CA-issued or CNG) certificate, where only NETWORK SERVICE's read is ensured.
 */
export function aceSetsParam(): { legacyMaxBuild: number; modernMinBuild: number; legacy: AceParam[]; between: AceParam[]; modern: AceParam[]; other: AceParam[] } {
  return {
    legacyMaxBuild: 14393,
    modernMinBuild: 17763,
    legacy: expectedContainerAces(14393).map(asParam),
    between: expectedContainerAces(16299).map(asParam),
    modern: expectedContainerAces(17763).map(asParam),
    other: [asParam(ace(SID.networkService, MASK.read, 'R', 'NETWORK SERVICE'))],
  };
}
