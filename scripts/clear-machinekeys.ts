// clear-machinekeys: repair the permissions that stop TermService from reading its RDP key — the
// classic Azure VM 0x904/0x7 — narrowly, on evidence, backed up, and undoably.
//
// What it does, least drastic first:
//  1. Acts only on evidence: NETWORK SERVICE cannot read an RDP key container, the key cannot be
//     opened even as SYSTEM, Schannel 36870/36871 or RemoteConnectionManager 1055/1057/1058 events,
//     or a MachineKeys folder ACL that differs from the default. No evidence → 'ok', nothing changed.
//  2. Backs up first into C:\ProgramData\rdpfix\backup\<time>-clear-machinekeys: `icacls MachineKeys
//     /save … /t /c` (restorable with `icacls …\Crypto\RSA /restore`, unlike the text dumps in
//     Microsoft's article), the folder's SDDL, and a copy plus the SDDL of each container it will
//     touch. If any backup file is missing it stops with nothing changed.
//  3. Repairs narrowly: the folder's default descriptor (O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA))
//     if it differs, and only the RDP key container(s): SYSTEM Full and NETWORK SERVICE Read, plus
//     Administrators Read up to build 14393 or NT SERVICE\SessionEnv Full from 17763 — by SID
//     (*S-1-5-18, *S-1-5-20, *S-1-5-32-544, S-1-5-80-…), denies for those SIDs removed, other entries
//     kept. Never `takeown /r`, never a recursive grant (that would hand NETWORK SERVICE every
//     private key on the machine: IIS, SQL Server, other certificates).
//  4. If the key is still unusable, removes only the RDP certificate and its own key (backed up) and
//     restarts TermService through restart-termserv's own functions, then verifies a new
//     certificate exists and NETWORK SERVICE can read its key.
// --rename-folder --force: the drastic fix many guides give (rename MachineKeys to MachineKeys_old_…,
// start a fresh folder). Every other service's keys live there too; it is journaled and undoable.
// When to use it: inspect-server names certificate-key-unusable with a clear-machinekeys fix, or
// restart-termserv --regenerate-cert failed. Must run as SYSTEM to read key ACLs from build 17763
// (Azure Run Command does; over WinRM/SSH an administrator may be refused — it says so).
// Undo: `npx tsx scripts/undo.ts --last --yes` puts the certificate, then the ACLs (or the folder) back.
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { buildScript, psQuote, type PsExample } from './lib/ps.ts';
import { compareContainerAcl, isSddl, networkServiceCanRead, sameSecurity } from './lib/sddl.ts';
import { aceSetsParam, DEFAULT_MACHINEKEYS_SDDL, expectedContainerAces, PS_NATIVE, PS_SDDL, psJoin, RD_STORE, RDP_CONTAINER_PREFIX } from './lib/server-ps.ts';
import {
  asArray,
  attachJournal,
  baseReport,
  journalChanges,
  nextCommand,
  psUndo,
  runStep,
  serverFlags,
  serverMain,
  targetPath,
  withServerOptions,
  type Change,
  type RawResult,
  type StepContext,
  type StepReport,
} from './lib/server-step.ts';
import type { UndoSpec } from './lib/journal.ts';
import { keyFindings, type Finding } from './inspect-server.ts';
import { backupRoot, describeSession, regenChange, restartFunctions, sessionImpact, validRecords, type CertBackupRecord, type RestartRaw, type SessionFacts } from './restart-termserv.ts';
import { validateInt } from './lib/validate.ts';

// ---------------------------------------------------------------- types

export interface ClearOptions {
  /** Step 4: regenerate the certificate when the key is still unusable (default true). */
  regenerate?: boolean;
  /** Restart TermService after an ACL repair so it picks the key up (default true). */
  restart?: boolean;
  /** The drastic fix; requires force. */
  renameFolder?: boolean;
  force?: boolean;
  /** Restart TermService although it disconnects other signed-in sessions (--force). */
  disconnectSessions?: boolean;
  eventHours?: number;
  timeoutSeconds?: number;
  backupRoot?: string;
}

export interface ContainerState {
  name: string;
  path: string;
  kind: 'listener' | 'other';
  sddl: string | null;
}

export interface KeyState {
  runAs?: string;
  build?: number;
  folder?: { path?: string; sddl?: string | null };
  containers?: ContainerState[] | ContainerState;
  certificate?: { thumbprint?: string | null; source?: string; selfSigned?: boolean | null; hasPrivateKey?: boolean | null; keyFile?: string | null; opened?: boolean | null; error?: string | null };
  events?: Record<string, number>;
  listError?: string | null;
}

export interface RegenSummary {
  status: string;
  error?: string | null;
  problems?: string[] | string;
  backup?: string | null;
  removed?: CertBackupRecord[] | CertBackupRecord;
  unpinned?: string | null;
  thumbprintBefore?: string | null;
  thumbprintAfter?: string | null;
  restarted?: boolean;
  plan?: unknown;
}

export interface ClearRaw extends RawResult {
  mode?: 'repair' | 'rename';
  note?: string | null;
  evidence?: string[] | string;
  before?: KeyState | null;
  plan?: { folder?: boolean; containers?: string[] | string; regenerate?: string; rename?: boolean; otherKeys?: number } | null;
  backup?: string | null;
  changed?: { folder?: { path: string; before: string | null; after: string | null } | null; containers?: Array<{ path: string; kind: 'listener' | 'other'; before: string | null; after: string | null }> | { path: string; kind: 'listener' | 'other'; before: string | null; after: string | null } };
  after?: KeyState | null;
  keyUsable?: boolean | null;
  restart?: RegenSummary | null;
  regenerate?: RegenSummary | null;
  renamed?: { path: string; to: string } | null;
  removed?: CertBackupRecord[] | CertBackupRecord;
  problems?: string[] | string;
  refused?: 'sessions' | null;
  sessions?: SessionFacts | null;
  restore?: string[] | string;
}

export interface ClearReport extends StepReport {
  evidenceFound: string[];
  findings: Finding[];
  regenerated: boolean;
}

// ---------------------------------------------------------------- PowerShell

/** Compare two descriptors in Windows' canonical rendering (repair and ACL undo). */
const SAME_PS = `function Test-RdpSameSecurity {
    # Same owner and DACL, compared in Windows' own canonical SDDL rendering.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Sddl, [Parameter(Mandatory = $true)][string]$Reference)
    $sections = [System.Security.AccessControl.AccessControlSections]'Owner, Access'
    $left = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl).GetSddlForm($sections)
    $right = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Reference).GetSddlForm($sections)
    return ($left -eq $right)
}`;

/** Evidence, backup, narrow repair, verify, regenerate (uses restart-termserv's functions). */
export const CLEAR_PS = `function Get-RdpKeyEvidence {
    # The RDP key containers (the listener's own, plus the key of a pinned certificate), their ACLs,
    # the MachineKeys folder ACL and the events that name an unusable key.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$MachineKeys, [int]$EventHours = 72)
    $certificate = Get-RdpCertificateState -WithKey
    $state = [ordered]@{
        runAs = [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value
        build = [int](Get-RdpRegistryValue -Path 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion' -Name @('CurrentBuild'))['CurrentBuild']
        folder = [ordered]@{ path = $MachineKeys; sddl = Get-RdpPathSddl -Path $MachineKeys -Directory }
        containers = @()
        certificate = [ordered]@{ thumbprint = $certificate.thumbprint; source = $certificate.source; selfSigned = $certificate.selfSigned; hasPrivateKey = $null; keyFile = $null; opened = $null; error = $null }
        events = [ordered]@{}
        listError = $null
    }
    if ($EventHours -gt 0) { $state.events = (Get-RdpEventSummary -Since (Get-Date).AddHours(-$EventHours) -Max 0).counts }
    if ($null -ne $certificate.inUse) { $state.certificate.hasPrivateKey = $certificate.inUse.HasPrivateKey }
    if ($null -ne $certificate.key) {
        $state.certificate.keyFile = $certificate.key.file
        $state.certificate.opened = $certificate.key.opened
        $state.certificate.error = $certificate.key.error
    }
    try {
        foreach ($file in @(Get-ChildItem -LiteralPath $MachineKeys -Filter (${psQuote(RDP_CONTAINER_PREFIX)} + '*') -Force -File -ErrorAction Stop | Select-Object -First 4)) {
            $state.containers += [ordered]@{ name = $file.Name; path = $file.FullName; kind = 'listener'; sddl = Get-RdpPathSddl -Path $file.FullName }
        }
    } catch {
        $state.listError = $_.Exception.Message
    }
    $keyFile = $state.certificate.keyFile
    if ($keyFile -and (@($state.containers | ForEach-Object -Process { $_.path }) -notcontains $keyFile)) {
        $kind = 'other'
        if ((Split-Path -Path $keyFile -Leaf).StartsWith(${psQuote(RDP_CONTAINER_PREFIX)})) { $kind = 'listener' }
        $state.containers += [ordered]@{ name = (Split-Path -Path $keyFile -Leaf); path = $keyFile; kind = $kind; sddl = $certificate.key.sddl }
    }
    return $state
}

function Get-RdpAceSet {
    # The entries a container must carry: by build for the listener's own key, NETWORK SERVICE's
    # read only for the key of a pinned certificate.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$AceSets, [int]$Build, [string]$Kind)
    if ($Kind -ne 'listener') { return $AceSets.other }
    if ($Build -le $AceSets.legacyMaxBuild) { return $AceSets.legacy }
    if ($Build -ge $AceSets.modernMinBuild) { return $AceSets.modern }
    return $AceSets.between
}

function Test-RdpContainerAcl {
    [CmdletBinding()]
    param([AllowEmptyString()][string]$Sddl, [Parameter(Mandatory = $true)][object[]]$Expected, [switch]$OwnerSystem)
    if (-not $Sddl) { return $false }
    foreach ($entry in $Expected) {
        if (-not (Test-RdpSddlAccess -Sddl $Sddl -Sid @($entry.sid) -Mask $entry.mask)) { return $false }
    }
    if ($OwnerSystem) {
        $owner = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl).Owner
        if ($null -eq $owner -or $owner.Value -ne 'S-1-5-18') { return $false }
    }
    return $true
}

function Get-RdpEvidenceList {
    # The evidence clear-machinekeys acts on; none means it changes nothing.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State, [Parameter(Mandatory = $true)][string]$DefaultFolderSddl)
    $networkService = @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-6', 'S-1-5-32-545')
    $evidence = @()
    foreach ($container in $State.containers) {
        if (-not $container.sddl) {
            if ($State.runAs -eq 'S-1-5-18') { $evidence += ('key-acl-unreadable:{0}' -f $container.name) }
        } elseif (-not (Test-RdpSddlAccess -Sddl $container.sddl -Sid $networkService -Mask 0x120089)) {
            $evidence += ('key-unreadable:{0}' -f $container.name)
        }
    }
    if ($State.certificate.opened -eq $false -and $State.certificate.error -and $State.runAs -eq 'S-1-5-18') { $evidence += 'key-open-failed' }
    foreach ($id in @('36870', '36871', '1055', '1057', '1058')) {
        if ($State.events.Contains($id)) { $evidence += ('event-{0}' -f $id) }
    }
    if ($State.folder.sddl -and -not (Test-RdpSameSecurity -Sddl $State.folder.sddl -Reference $DefaultFolderSddl)) { $evidence += 'folder-acl' }
    return $evidence
}

function Test-RdpKeyUsable {
    # The certificate in use exists, has its key file, NETWORK SERVICE can read it, and (as SYSTEM)
    # the key opens.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State)
    $certificate = $State.certificate
    if (-not $certificate.thumbprint -or $certificate.hasPrivateKey -eq $false -or -not $certificate.keyFile) { return $false }
    $key = @($State.containers | Where-Object -FilterScript { $_.path -eq $certificate.keyFile })
    if ($key.Count -eq 0 -or -not $key[0].sddl) { return $false }
    if (-not (Test-RdpSddlAccess -Sddl $key[0].sddl -Sid @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-6', 'S-1-5-32-545') -Mask 0x120089)) { return $false }
    if ($State.runAs -eq 'S-1-5-18' -and $certificate.opened -eq $false) { return $false }
    return $true
}

function Backup-RdpMachineKeyAcl {
    # icacls /save of the whole folder (restorable with icacls /restore on its parent), the folder's
    # SDDL, and a copy plus the SDDL of each container about to change; all checked.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$MachineKeys,
        [Parameter(Mandatory = $true)][string]$Folder,
        [AllowEmptyString()][string]$FolderSddl = '',
        [object[]]$Container = @()
    )
    if ($PSCmdlet.ShouldProcess($Folder, 'Back up the MachineKeys ACLs and the RDP key containers')) {
        $aclFile = Join-Path -Path $Folder -ChildPath 'MachineKeys.acl'
        # /c continues past files this account may not read; what matters is checked below.
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($MachineKeys, '/save', $aclFile, '/t', '/c', '/q') -MaxExitCode ([int]::MaxValue)
        $files = @($aclFile)
        $saved = ''
        if (Test-Path -LiteralPath $aclFile) { $saved = [string](Get-Content -LiteralPath $aclFile -Encoding Unicode -Raw) }
        foreach ($item in $Container) {
            if ($item.kind -eq 'listener' -and $saved.IndexOf($item.name, [System.StringComparison]::OrdinalIgnoreCase) -lt 0) {
                throw ('backup failed: icacls /save did not record {0}; nothing was changed' -f $item.name)
            }
            Copy-RdpFile -Source $item.path -Destination $Folder
            $sddlFile = Join-Path -Path $Folder -ChildPath ($item.name + '.sddl.txt')
            Set-Content -LiteralPath $sddlFile -Value ([string]$item.sddl) -Encoding ASCII
            $files += @((Join-Path -Path $Folder -ChildPath $item.name), $sddlFile)
        }
        if ($FolderSddl) {
            $folderFile = Join-Path -Path $Folder -ChildPath 'MachineKeys.sddl.txt'
            Set-Content -LiteralPath $folderFile -Value $FolderSddl -Encoding ASCII
            $files += $folderFile
        }
        Assert-RdpBackupFile -Path $files
    }
}

function Set-RdpContainerAcl {
    # Only this file: remove denies for the SIDs being granted, grant the build's set by SID
    # (replacing those SIDs' explicit grants), owner SYSTEM. Other entries are kept.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][object[]]$Aces, [switch]$OwnerSystem)
    if ($PSCmdlet.ShouldProcess($Path, 'Set the RDP key container ACL to the build default')) {
        $sids = @($Aces | ForEach-Object -Process { '*' + $_.sid })
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList (@($Path, '/remove:d') + $sids)
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList (@($Path, '/grant:r') + @($Aces | ForEach-Object -Process { $_.grant }))
        if ($OwnerSystem) { $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($Path, '/setowner', '*S-1-5-18') }
    }
}

function Set-RdpFolderAcl {
    # The MachineKeys folder back to its default descriptor (DACL, then owner SYSTEM). Not recursive.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][string]$Sddl)
    if ($PSCmdlet.ShouldProcess($Path, 'Restore the default MachineKeys folder ACL (this folder only)')) {
        Set-RdpPathSddl -Path $Path -Sddl $Sddl -Directory
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($Path, '/setowner', '*S-1-5-18')
    }
}

function ConvertTo-RdpRegenSummary {
    # The parts of a restart-termserv result the journal needs, compactly.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Restart)
    $before = $null
    $after = $null
    if ($null -ne $Restart.before) { $before = $Restart.before.certificate.thumbprint }
    if ($null -ne $Restart.after) { $after = $Restart.after.certificate.thumbprint }
    return [ordered]@{
        status = $Restart.status; error = $Restart.error; problems = $Restart.problems; backup = $Restart.backup
        removed = $Restart.removed; unpinned = $Restart.unpinned; restarted = $Restart.restarted
        thumbprintBefore = $before; thumbprintAfter = $after; plan = $Restart.plan
    }
}

function ConvertTo-RdpKeyStateSummary {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State)
    return [ordered]@{
        runAs = $State.runAs
        build = $State.build
        certificate = $State.certificate
        folder = $State.folder
        containers = @($State.containers | ForEach-Object -Process { [ordered]@{ name = $_.name; kind = $_.kind; sddl = $_.sddl } })
    }
}

function Assert-RdpSessionFree {
    # Before a change that ends in a TermService restart: refuse (nothing changed yet) when other
    # signed-in sessions would be disconnected, unless -DisconnectSessions. A dry run only reports.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Result, [switch]$DisconnectSessions)
    $termService = @(Get-Service -Name 'TermService' -ErrorAction SilentlyContinue)
    $running = ($termService.Count -gt 0 -and [string]$termService[0].Status -eq 'Running')
    $Result.sessions = Get-RdpSession
    $block = Test-RdpSessionBlock -Sessions $Result.sessions -Running $running
    if ($block -and -not $DisconnectSessions -and -not $WhatIfPreference) {
        $Result.refused = 'sessions'
        throw $block
    }
}

function Repair-RdpMachineKey {
    # Evidence, backup, narrow repair, verify; regenerate only if the key is still unusable.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$AceSets,
        [Parameter(Mandatory = $true)][string]$DefaultFolderSddl,
        [AllowEmptyString()][string]$BackupRoot = '',
        [int]$EventHours = 72,
        [switch]$Regenerate,
        [switch]$Restart,
        [switch]$RenameFolder,
        [switch]$DisconnectSessions,
        [int]$TimeoutSeconds = 60
    )
    $machineKeys = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft\\Crypto\\RSA\\MachineKeys'
    $result = [ordered]@{
        step = 'clear-machinekeys'; mode = 'repair'; status = 'failed'; error = $null; note = $null
        evidence = @(); before = $null; plan = $null; backup = $null
        changed = [ordered]@{ folder = $null; containers = @() }
        after = $null; keyUsable = $null; restart = $null; regenerate = $null; renamed = $null; removed = @(); problems = @()
        refused = $null; sessions = $null; restore = @()
    }
    try {
        $before = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours $EventHours
        $result.before = ConvertTo-RdpKeyStateSummary -State $before
        $result.before.events = $before.events
        $result.evidence = @(Get-RdpEvidenceList -State $before -DefaultFolderSddl $DefaultFolderSddl)
        $unjudged = @($before.containers | Where-Object -FilterScript { -not $_.sddl })
        if ($unjudged.Count -gt 0 -and $before.runAs -ne 'S-1-5-18') {
            throw ('cannot read the ACL of {0} as {1}: from build 17763 Administrators are not in it; run this as SYSTEM (Azure Run Command, or the --emit script in a SYSTEM shell)' -f $unjudged[0].name, $before.runAs)
        }
        if ($result.evidence.Count -eq 0) {
            $result.status = 'ok'
            $result.note = 'no evidence of an unusable RDP key: nothing changed'
            return $result
        }
        if ($RenameFolder) {
            $result.mode = 'rename'
            $others = @(Get-ChildItem -LiteralPath $machineKeys -Force -File -ErrorAction SilentlyContinue | Where-Object -FilterScript { -not $_.Name.StartsWith(${psQuote(RDP_CONTAINER_PREFIX)}) }).Count
            $result.plan = [ordered]@{ rename = $true; otherKeys = $others }
            Assert-RdpSessionFree -Result $result -DisconnectSessions:$DisconnectSessions
            if ($PSCmdlet.ShouldProcess($machineKeys, 'Rename to MachineKeys_old_<time>, start a fresh folder, remove the RDP certificate, restart')) {
                $folder = New-RdpBackupFolder -Root $BackupRoot -Step 'clear-machinekeys-rename'
                $result.backup = $folder
                Backup-RdpMachineKeyAcl -MachineKeys $machineKeys -Folder $folder -FolderSddl ([string]$before.folder.sddl)
                $records = @()
                if (Test-Path -LiteralPath ${psQuote(RD_STORE)}) {
                    foreach ($item in @(Get-ChildItem -LiteralPath ${psQuote(RD_STORE)})) { $records += Backup-RdpCertificate -Certificate $item -Folder $folder -Key $null }
                }
                $newName = 'MachineKeys_old_{0}' -f (Get-Date).ToString('yyyyMMdd-HHmmss')
                Rename-Item -LiteralPath $machineKeys -NewName $newName
                $result.renamed = [ordered]@{ path = $machineKeys; to = (Join-Path -Path (Split-Path -Path $machineKeys -Parent) -ChildPath $newName) }
                $null = New-Item -ItemType Directory -Path $machineKeys
                Set-RdpFolderAcl -Path $machineKeys -Sddl $DefaultFolderSddl
                foreach ($record in $records) {
                    Remove-Item -LiteralPath (Join-Path -Path ${psQuote(RD_STORE)} -ChildPath $record.thumbprint) -Confirm:$false
                    $result.removed += $record
                }
                $putBack = @(
                    ('Rename-Item -LiteralPath {0} -NewName {1}' -f (ConvertTo-RdpLiteral -Value $machineKeys), (ConvertTo-RdpLiteral -Value ('MachineKeys_rdpfix_{0}' -f (Get-Date).ToString('yyyyMMdd-HHmmss')))),
                    ('Rename-Item -LiteralPath {0} -NewName {1}' -f (ConvertTo-RdpLiteral -Value $result.renamed.to), (ConvertTo-RdpLiteral -Value (Split-Path -Path $machineKeys -Leaf)))
                )
                $result.restore = $putBack + @(Get-RdpCertRestoreLine -Folder $folder -Record $result.removed)
                $regen = Restart-RdpService -RegenerateCert -TimeoutSeconds $TimeoutSeconds -BackupRoot $BackupRoot -DisconnectSessions:$DisconnectSessions
                $result.regenerate = ConvertTo-RdpRegenSummary -Restart $regen
                if ($null -ne $regen.after) { $result.restore = $putBack + @(Get-RdpCertRestoreLine -Folder $folder -Record $result.removed -NewThumbprint @($regen.after.certificate.thumbprint)) }
                if ($regen.status -ne 'changed') { $result.problems += ('after the rename: {0} {1}' -f $regen.error, (@($regen.problems) -join '; ')) }
                $after = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours 0
                $result.after = ConvertTo-RdpKeyStateSummary -State $after
                $result.keyUsable = Test-RdpKeyUsable -State $after
                if (-not $result.keyUsable) { $result.problems += 'the new key is not usable by TermService' }
                if ($result.problems.Count -gt 0) { $result.status = 'failed' } else { $result.status = 'changed' }
            } else {
                $result.status = 'would-change'
            }
            return $result
        }
        $folderFix = ($before.folder.sddl -and -not (Test-RdpSameSecurity -Sddl $before.folder.sddl -Reference $DefaultFolderSddl))
        $fixes = @()
        foreach ($container in $before.containers) {
            $aces = @(Get-RdpAceSet -AceSets $AceSets -Build $before.build -Kind $container.kind)
            if (-not (Test-RdpContainerAcl -Sddl $container.sddl -Expected $aces -OwnerSystem:($container.kind -eq 'listener'))) {
                $fixes += [ordered]@{ container = $container; aces = $aces }
            }
        }
        $result.plan = [ordered]@{ folder = [bool]$folderFix; containers = @($fixes | ForEach-Object -Process { $_.container.name }); regenerate = 'only if the key is still unusable after the ACL repair' }
        if ((($folderFix -or $fixes.Count -gt 0) -and $Restart) -or ($Regenerate -and -not (Test-RdpKeyUsable -State $before))) {
            Assert-RdpSessionFree -Result $result -DisconnectSessions:$DisconnectSessions
        }
        $applied = $false
        if ($folderFix -or $fixes.Count -gt 0) {
            if ($PSCmdlet.ShouldProcess($machineKeys, 'Back up, then repair the MachineKeys folder and RDP key container ACLs')) {
                $folder = New-RdpBackupFolder -Root $BackupRoot -Step 'clear-machinekeys'
                $result.backup = $folder
                Backup-RdpMachineKeyAcl -MachineKeys $machineKeys -Folder $folder -FolderSddl ([string]$before.folder.sddl) -Container @($fixes | ForEach-Object -Process { $_.container })
                # Backups are written and checked; only now does anything change.
                if ($folderFix) {
                    Set-RdpFolderAcl -Path $machineKeys -Sddl $DefaultFolderSddl
                    $result.changed.folder = [ordered]@{ path = $machineKeys; before = $before.folder.sddl; after = (Get-RdpPathSddl -Path $machineKeys -Directory) }
                }
                foreach ($fix in $fixes) {
                    Set-RdpContainerAcl -Path $fix.container.path -Aces $fix.aces -OwnerSystem:($fix.container.kind -eq 'listener')
                    $result.changed.containers += [ordered]@{ path = $fix.container.path; kind = $fix.container.kind; before = $fix.container.sddl; after = (Get-RdpPathSddl -Path $fix.container.path) }
                }
                # icacls /save recorded the folder and its files relative to the parent folder.
                $result.restore = @(('icacls.exe {0} /restore {1} /c' -f (ConvertTo-RdpLiteral -Value (Split-Path -Path $machineKeys -Parent)), (ConvertTo-RdpLiteral -Value (Join-Path -Path $folder -ChildPath 'MachineKeys.acl'))))
                $applied = $true
            } else {
                $result.status = 'would-change'
                return $result
            }
        }
        $after = $before
        if ($applied) { $after = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours 0 }
        $result.after = ConvertTo-RdpKeyStateSummary -State $after
        $result.keyUsable = Test-RdpKeyUsable -State $after
        if (-not $result.keyUsable -and $Regenerate) {
            if ($after.certificate.source -eq 'pinned') {
                $result.problems += 'the key of the pinned certificate is still unusable; rdpfix does not remove a CA-issued certificate: re-import it with its private key'
            } else {
                $regen = Restart-RdpService -RegenerateCert -RemoveKey -OnlyThumbprint ([string]$after.certificate.thumbprint) -BackupRoot $BackupRoot -TimeoutSeconds $TimeoutSeconds -DisconnectSessions:$DisconnectSessions
                $result.regenerate = ConvertTo-RdpRegenSummary -Restart $regen
                # The regeneration is undone first, then the ACLs.
                $result.restore = @($regen.restore) + @($result.restore)
                if ($regen.status -eq 'failed') { $result.problems += ('regeneration failed: {0} {1}' -f $regen.error, (@($regen.problems) -join '; ')) }
                if ($regen.status -eq 'changed') {
                    $final = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours 0
                    $result.after = ConvertTo-RdpKeyStateSummary -State $final
                    $result.keyUsable = Test-RdpKeyUsable -State $final
                    if (-not $result.keyUsable) { $result.problems += 'the regenerated key is not usable by TermService' }
                }
            }
        } elseif (-not $result.keyUsable) {
            $result.problems += 'the key is still unusable (regeneration not allowed)'
        } elseif ($applied -and $Restart) {
            $restarted = Restart-RdpService -TimeoutSeconds $TimeoutSeconds -DisconnectSessions:$DisconnectSessions
            $result.restart = ConvertTo-RdpRegenSummary -Restart $restarted
            if ($restarted.status -eq 'failed') { $result.problems += ('restart failed: {0} {1}' -f $restarted.error, (@($restarted.problems) -join '; ')) }
        }
        if ($result.problems.Count -gt 0) { $result.status = 'failed' }
        elseif ($null -ne $result.regenerate -and $result.regenerate.status -eq 'would-change') { $result.status = 'would-change' }
        elseif ($applied -or ($null -ne $result.regenerate -and $result.regenerate.status -eq 'changed')) { $result.status = 'changed' }
        else {
            $result.status = 'ok'
            $result.note = 'evidence was found, but the ACLs already match the build and the key is usable: nothing to change'
        }
    } catch {
        $result.status = 'failed'
        $result.error = $_.Exception.Message
    }
    return $result
}`;

/** Undo of an ACL repair. */
const RESTORE_ACL_PS = `function Restore-RdpMachineKeyAcl {
    # Undo of an ACL repair: each descriptor back to what it was (DACL, then owner), read back.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([object[]]$Item = @())
    $result = [ordered]@{ step = 'clear-machinekeys-undo'; status = 'failed'; error = $null; restored = @(); problems = @() }
    try {
        $pending = @()
        foreach ($entry in $Item) {
            if (-not (Test-Path -LiteralPath $entry.path)) { $result.problems += ('{0} no longer exists' -f $entry.path); continue }
            $current = Get-RdpPathSddl -Path $entry.path -Directory:([bool]$entry.directory)
            if (-not $current -or -not (Test-RdpSameSecurity -Sddl $current -Reference $entry.sddl)) { $pending += $entry }
        }
        if ($pending.Count -eq 0 -and $result.problems.Count -eq 0) {
            $result.status = 'ok'
            return $result
        }
        if ($PSCmdlet.ShouldProcess(('{0} item(s)' -f $pending.Count), 'Restore the recorded access control lists')) {
            foreach ($entry in $pending) {
                Set-RdpPathSddl -Path $entry.path -Sddl $entry.sddl -Directory:([bool]$entry.directory)
                $owner = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $entry.sddl).Owner
                if ($null -ne $owner) { $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($entry.path, '/setowner', ('*' + $owner.Value)) }
                $now = Get-RdpPathSddl -Path $entry.path -Directory:([bool]$entry.directory)
                if ($now -and (Test-RdpSameSecurity -Sddl $now -Reference $entry.sddl)) { $result.restored += $entry.path }
                else { $result.problems += ('{0} did not read back as recorded' -f $entry.path) }
            }
            if ($result.problems.Count -gt 0) { $result.status = 'failed' } else { $result.status = 'changed' }
        } else {
            $result.status = 'would-change'
        }
    } catch {
        $result.status = 'failed'
        $result.error = $_.Exception.Message
    }
    return $result
}`;

/** Undo of --rename-folder (uses restart-termserv's Restore-RdpCertificate). */
const RESTORE_FOLDER_PS = `function Restore-RdpMachineKeysFolder {
    # Undo of --rename-folder: the fresh folder is moved aside (kept), the renamed one put back, and
    # the old certificate(s) restored through Restore-RdpCertificate (which restarts and verifies).
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$RenamedTo,
        [Parameter(Mandatory = $true)][string]$BackupPath,
        [object[]]$Certificates = @(),
        [int]$TimeoutSeconds = 60
    )
    $result = [ordered]@{ step = 'clear-machinekeys-undo'; status = 'failed'; error = $null; movedAside = $null; certificates = $null }
    try {
        if (-not (Test-Path -LiteralPath $RenamedTo)) {
            if (Test-Path -LiteralPath $Path) { $result.error = ('{0} is gone: the folder was already put back or moved' -f $RenamedTo) }
            else { $result.error = ('neither {0} nor {1} exists' -f $RenamedTo, $Path) }
            return $result
        }
        if ($PSCmdlet.ShouldProcess($Path, ('Move the fresh folder aside and rename {0} back' -f $RenamedTo))) {
            $aside = '{0}_rdpfix_{1}' -f (Split-Path -Path $Path -Leaf), (Get-Date).ToString('yyyyMMdd-HHmmss')
            if (Test-Path -LiteralPath $Path) {
                Rename-Item -LiteralPath $Path -NewName $aside
                $result.movedAside = Join-Path -Path (Split-Path -Path $Path -Parent) -ChildPath $aside
            }
            Rename-Item -LiteralPath $RenamedTo -NewName (Split-Path -Path $Path -Leaf)
            $restored = Restore-RdpCertificate -BackupPath $BackupPath -Certificates $Certificates -TimeoutSeconds $TimeoutSeconds
            $result.certificates = [ordered]@{ status = $restored.status; error = $restored.error; problems = $restored.problems }
            if ((Test-Path -LiteralPath $Path) -and $restored.status -ne 'failed') { $result.status = 'changed' } else { $result.status = 'failed' }
        } else {
            $result.status = 'would-change'
        }
    } catch {
        $result.status = 'failed'
        $result.error = $_.Exception.Message
    }
    return $result
}`;

const DROP = ['before.containers', 'after.containers', 'before.events', 'regenerate.plan', 'restart.plan', 'before.folder', 'after.folder', 'sessions.list'];

export function buildClearScript(opts: ClearOptions, dryRun: boolean): string {
  const params = {
    AceSets: aceSetsParam(),
    DefaultFolderSddl: DEFAULT_MACHINEKEYS_SDDL,
    BackupRoot: opts.backupRoot ?? '',
    EventHours: opts.eventHours ?? 72,
    Regenerate: opts.regenerate ?? true,
    Restart: opts.restart ?? true,
    RenameFolder: !!opts.renameFolder,
    DisconnectSessions: !!opts.disconnectSessions,
    TimeoutSeconds: opts.timeoutSeconds ?? 60,
    DryRun: dryRun,
  };
  const call = `$Result = Repair-RdpMachineKey -AceSets $P.AceSets -DefaultFolderSddl $P.DefaultFolderSddl -BackupRoot $P.BackupRoot -EventHours $P.EventHours -Regenerate:$P.Regenerate -Restart:$P.Restart -RenameFolder:$P.RenameFolder -DisconnectSessions:$P.DisconnectSessions -TimeoutSeconds $P.TimeoutSeconds -WhatIf:$P.DryRun
$Result = Compress-RdpResult -Result $Result -Drop @(${DROP.map(psQuote).join(', ')})`;
  return buildScript({
    name: 'clear-machinekeys',
    summary: opts.renameFolder ? 'on evidence, rename MachineKeys (drastic) and regenerate the RDP certificate' : 'on evidence, back up and repair the RDP key ACLs; regenerate the certificate if still unusable',
    params,
    body: psJoin(restartFunctions(), SAME_PS, CLEAR_PS, call),
  });
}

// ---------------------------------------------------------------- undo scripts

export interface AclRestoreItem {
  path: string;
  sddl: string;
  directory: boolean;
}

export function buildRestoreAclScript(items: AclRestoreItem[]): string {
  return buildScript({
    name: 'clear-machinekeys-undo',
    summary: 'restore the MachineKeys folder and RDP key container ACLs recorded before the repair',
    params: { Items: items.map((i) => ({ ...i })), DryRun: false },
    body: psJoin(PS_SDDL, PS_NATIVE, SAME_PS, RESTORE_ACL_PS, '$Result = Restore-RdpMachineKeyAcl -Item @($P.Items) -WhatIf:$P.DryRun'),
  });
}

export interface FolderRestoreData {
  path: string;
  renamedTo: string;
  backup: string;
  certificates: CertBackupRecord[];
  timeoutSeconds?: number;
}

export function buildRestoreFolderScript(d: FolderRestoreData): string {
  return buildScript({
    name: 'clear-machinekeys-undo',
    summary: `put ${d.renamedTo} back as MachineKeys and restore the old RDP certificate`,
    params: { Path: d.path, RenamedTo: d.renamedTo, BackupPath: d.backup, Certificates: d.certificates.map((c) => ({ ...c })), TimeoutSeconds: d.timeoutSeconds ?? 60, DryRun: false },
    body: psJoin(
      restartFunctions(),
      RESTORE_FOLDER_PS,
      '$Result = Restore-RdpMachineKeysFolder -Path $P.Path -RenamedTo $P.RenamedTo -BackupPath $P.BackupPath -Certificates @($P.Certificates) -TimeoutSeconds $P.TimeoutSeconds -WhatIf:$P.DryRun',
    ),
  });
}

// ---------------------------------------------------------------- interpretation

const EVIDENCE_TEXT: Array<[RegExp, (m: RegExpExecArray) => string]> = [
  [/^key-unreadable:(.+)$/, (m) => `NETWORK SERVICE cannot read the RDP key container ${m[1]}`],
  [/^key-acl-unreadable:(.+)$/, (m) => `even SYSTEM cannot read the ACL of ${m[1]}`],
  [/^key-open-failed$/, () => 'the private key cannot be opened even as SYSTEM'],
  [/^event-(\d+)$/, (m) => `event ${m[1]} (${{ '36870': 'Schannel: cannot access the private key', '36871': 'Schannel: cannot create the TLS credential', '1055': 'cannot access the private key', '1057': 'cannot create a self-signed certificate', '1058': 'cannot replace the expired certificate' }[m[1]!] ?? 'key problem'})`],
  [/^folder-acl$/, () => 'the MachineKeys folder ACL differs from the default'],
];

export function describeEvidence(e: string): string {
  for (const [re, f] of EVIDENCE_TEXT) {
    const m = re.exec(e);
    if (m) return f(m);
  }
  return e;
}

/** Re-check, in TypeScript, every descriptor the target says it repaired. */
export function verifyRepair(raw: ClearRaw): string[] {
  const problems: string[] = [];
  const build = raw.before?.build ?? 0;
  const folder = raw.changed?.folder;
  if (folder) {
    if (!folder.after || !isSddl(folder.after) || !sameSecurity(folder.after, DEFAULT_MACHINEKEYS_SDDL)) problems.push(`the MachineKeys folder ACL did not read back as the default (${folder.after ?? 'unreadable'})`);
  }
  for (const c of asArray<{ path: string; kind: 'listener' | 'other'; after: string | null }>(raw.changed?.containers)) {
    if (!c.after || !isSddl(c.after)) {
      problems.push(`${c.path}: the repaired ACL could not be read back`);
      continue;
    }
    if (c.kind === 'listener') {
      const cmp = compareContainerAcl(c.after, expectedContainerAces(build));
      if (!cmp.matches) problems.push(`${c.path}: after the repair ${cmp.aces.filter((a) => a.state !== 'ok').map((a) => `${a.who} ${a.state}`).join(', ') || `owner ${cmp.owner}`}`);
    } else if (!networkServiceCanRead(c.after)) {
      problems.push(`${c.path}: NETWORK SERVICE still cannot read it`);
    }
  }
  return problems;
}

/** The journal changes of one run: the ACL repair, then the regeneration (undone first), or the rename. */
export function clearChanges(raw: ClearRaw, ctx: StepContext, opts: ClearOptions = {}): Change[] {
  const out: Change[] = [];
  const backup = targetPath(raw.backup);
  const items: AclRestoreItem[] = [];
  let bad = false;
  const folder = raw.changed?.folder;
  if (folder) {
    const path = targetPath(folder.path);
    if (path && folder.before && isSddl(folder.before)) items.push({ path, sddl: folder.before, directory: true });
    else bad = true;
  }
  for (const c of asArray<{ path: string; before: string | null }>(raw.changed?.containers)) {
    const path = targetPath(c.path);
    if (path && c.before && isSddl(c.before)) items.push({ path, sddl: c.before, directory: false });
    else bad = true;
  }
  if (folder || asArray(raw.changed?.containers).length) {
    const undo: UndoSpec = bad
      ? { kind: 'none', reason: `the target reported ACLs rdpfix will not embed in a script; restore by hand: icacls "${String(raw.backup)}" data (icacls <…\\Crypto\\RSA> /restore <backup>\\MachineKeys.acl)` }
      : psUndo(ctx, buildRestoreAclScript(items));
    out.push({
      summary: `repaired ${[folder ? 'the MachineKeys folder ACL' : '', ...asArray<{ path: string }>(raw.changed?.containers).map((c) => c.path.split('\\').at(-1))].filter(Boolean).join(', ')}`,
      before: items.map((i) => ({ path: i.path, sddl: i.sddl })),
      after: [...(folder ? [{ path: folder.path, sddl: folder.after }] : []), ...asArray<{ path: string; after: string | null }>(raw.changed?.containers).map((c) => ({ path: c.path, sddl: c.after }))],
      backup,
      undo,
    });
  }
  if (raw.renamed) {
    const path = targetPath(raw.renamed.path);
    const to = targetPath(raw.renamed.to);
    const certs = validRecords(raw.removed);
    const undo: UndoSpec =
      path && to && backup && certs
        ? psUndo(ctx, buildRestoreFolderScript({ path, renamedTo: to, backup, certificates: certs, ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}) }))
        : { kind: 'none', reason: `restore by hand: rename ${String(raw.renamed.to)} back to MachineKeys and reg import the certificates in ${String(raw.backup)}` };
    out.push({ summary: `renamed MachineKeys to ${raw.renamed.to} and removed the RDP certificate(s)`, before: { path: raw.renamed.path, removed: asArray<CertBackupRecord>(raw.removed).map((r) => r.thumbprint) }, after: { renamedTo: raw.renamed.to, thumbprint: raw.regenerate?.thumbprintAfter ?? null }, backup, undo });
  } else if (raw.regenerate) {
    const asRestart: RestartRaw = {
      status: raw.regenerate.status,
      backup: raw.regenerate.backup ?? null,
      removed: raw.regenerate.removed ?? [],
      unpinned: raw.regenerate.unpinned ?? null,
      before: { certificate: { thumbprint: raw.regenerate.thumbprintBefore ?? null } },
      after: { certificate: { thumbprint: raw.regenerate.thumbprintAfter ?? null } },
    };
    const c = regenChange(asRestart, ctx, opts.timeoutSeconds);
    if (c) out.push(c);
  }
  return out;
}

export function interpretClear(raw: ClearRaw, ctx: StepContext, opts: ClearOptions = {}): ClearReport {
  const evidence = asArray<string>(raw.evidence);
  const before = raw.before ?? {};
  const findings = keyFindings(
    {
      ...(before.build !== undefined ? { build: before.build } : {}),
      ...(before.runAs !== undefined ? { runAs: before.runAs } : {}),
      folderSddl: before.folder?.sddl ?? null,
      containers: before.containers,
      key: before.certificate
        ? {
            file: before.certificate.keyFile ?? null,
            ...(typeof before.certificate.opened === 'boolean' ? { opened: before.certificate.opened } : {}),
            error: before.certificate.error ?? null,
            sddl: asArray<ContainerState>(before.containers).find((c) => c.name && c.name === before.certificate?.keyFile?.split('\\').at(-1))?.sddl ?? null,
          }
        : null,
      hasPrivateKey: before.certificate?.hasPrivateKey ?? null,
      eventCounts: before.events ?? {},
    },
    (args) => nextCommand('clear-machinekeys', args, ctx),
  );
  const r: ClearReport = {
    ...baseReport('clear-machinekeys', ctx),
    before: raw.before ?? null,
    after: raw.after ?? null,
    backup: raw.backup ?? null,
    evidenceFound: evidence,
    findings,
    regenerated: raw.regenerate?.status === 'changed',
  };
  const problems = [...asArray<string>(raw.problems)];
  let status = (['ok', 'changed', 'would-change', 'failed'].includes(raw.status) ? raw.status : 'failed') as ClearReport['status'];
  if (status === 'changed' && raw.mode !== 'rename') {
    const v = verifyRepair(raw);
    if (v.length) {
      problems.push(...v);
      status = 'failed';
    }
  }
  r.status = status;
  if (raw.error) r.error = raw.error;
  const plan = raw.plan ?? {};
  const planned = [plan.folder ? 'the MachineKeys folder ACL' : '', ...asArray<string>(plan.containers)].filter(Boolean);
  switch (status) {
    case 'ok':
      r.summary = raw.note ?? 'nothing to do';
      break;
    case 'would-change':
      r.summary = plan.rename
        ? `would rename MachineKeys (with ${plan.otherKeys ?? '?'} other keys in it) and regenerate the RDP certificate`
        : planned.length
          ? `would back up and repair ${planned.join(', ')}; then regenerate the certificate only if the key is still unusable`
          : `would regenerate the RDP certificate (remove it and its key, restart TermService)`;
      break;
    case 'changed':
      r.summary = raw.mode === 'rename'
        ? `MachineKeys renamed to ${raw.renamed?.to}; new certificate ${raw.regenerate?.thumbprintAfter ?? '?'}`
        : `${[asArray(raw.changed?.containers).length || raw.changed?.folder ? `repaired ${planned.join(', ') || 'the ACLs'}` : '', r.regenerated ? `regenerated the certificate (${raw.regenerate?.thumbprintBefore ?? 'none'} → ${raw.regenerate?.thumbprintAfter ?? '?'})` : ''].filter(Boolean).join('; ')}; the key is usable by TermService`;
      break;
    default:
      r.summary = raw.error ?? (problems.join('; ') || 'the repair failed');
  }
  if (evidence.length) r.evidence.push(`evidence: ${evidence.map(describeEvidence).join('; ')}`);
  for (const c of asArray<{ path: string; before: string | null; after: string | null }>(raw.changed?.containers)) r.evidence.push(`${c.path}: ${c.before ?? '?'} → ${c.after ?? '?'}`);
  if (raw.changed?.folder) r.evidence.push(`MachineKeys: ${raw.changed.folder.before ?? '?'} → ${raw.changed.folder.after ?? '?'}`);
  if (status === 'failed' && problems.length && r.summary !== problems.join('; ')) r.evidence.push(...problems);
  if (opts.renameFolder || raw.mode === 'rename') {
    r.warnings.push(`--rename-folder moves every machine key aside, not just RDP's: IIS, SQL Server and other certificates' keys${plan.otherKeys !== undefined ? ` (${plan.otherKeys} other files)` : ''} stop working until restored (undo puts the folder back)`);
  }
  const impact = sessionImpact(raw.sessions, true);
  const others = [...impact.others.map(describeSession), ...(impact.more ? [`${impact.more} more`] : [])].join('; ');
  const args = [...(opts.renameFolder ? ['--rename-folder'] : []), ...(opts.renameFolder || opts.disconnectSessions ? ['--force'] : [])];
  if (raw.refused === 'sessions') {
    r.summary = `refused: the repair ends with a TermService restart, which disconnects ${impact.unknown ? `signed-in users (the sessions could not be listed: ${impact.unknown})` : others}; nothing was changed (pass --force to go ahead)`;
    r.next.push(nextCommand('clear-machinekeys', [...args.filter((a) => a !== '--force'), '--force'], ctx));
  } else if (raw.sessions && impact.blocks && (status === 'would-change' || raw.restart || raw.regenerate)) {
    r.warnings.push(`the TermService restart ${status === 'would-change' ? 'would disconnect' : 'disconnected'} ${impact.unknown ? 'signed-in users (the sessions could not be listed)' : others}${status === 'would-change' && !opts.disconnectSessions ? '; the real run refuses without --force' : ''}`);
  }
  if (status === 'failed' && /run this as SYSTEM/.test(raw.error ?? '')) {
    r.notes.push(`reading the RDP key ACL needs SYSTEM from build 17763: Azure Run Command runs as SYSTEM (${nextCommand('clear-machinekeys', args, { ...ctx, target: { kind: 'azure', subscription: 'SUB', resourceGroup: 'RG', vm: 'VM' } })}), or run the --emit script in a SYSTEM PowerShell (psexec -s -i powershell.exe)`);
  }
  if (status === 'changed') r.notes.push('probe RDP from your workstation: npx tsx scripts/diagnose.ts HOST');
  if (status === 'would-change') r.next.push(nextCommand('clear-machinekeys', [...args, ...(impact.blocks && !args.includes('--force') ? ['--force'] : [])], ctx));
  return r;
}

/** Repair the RDP key's permissions on a target, on evidence. */
export async function clearMachineKeys(opts: ClearOptions, ctx: StepContext): Promise<ClearReport> {
  if (opts.renameFolder && !opts.force) throw new UsageError(RENAME_WARNING);
  const raw = await runStep<ClearRaw>(ctx, buildClearScript(opts, ctx.dryRun));
  const report = interpretClear(raw, ctx, opts);
  const changes = clearChanges(raw, ctx, opts);
  if (changes.length) {
    attachJournal(report, await journalChanges(ctx, 'clear-machinekeys', changes), ctx);
    if (report.status === 'failed' && report.undo) report.next.unshift(`undo what was changed: ${report.undo}`);
  }
  return report;
}

export const RENAME_WARNING =
  '--rename-folder renames the whole MachineKeys folder: the private keys of IIS, SQL Server and every other machine certificate live there too and stop working until it is put back. It needs --force (the default repair touches only the RDP key); --force also lets its TermService restart disconnect signed-in users.';

// ---------------------------------------------------------------- examples

export function psExamples(): PsExample[] {
  return [
    { label: 'repair', script: buildClearScript({}, false) },
    { label: 'repair-dry-run', script: buildClearScript({}, true) },
    { label: 'repair-no-regenerate', script: buildClearScript({ regenerate: false, restart: false, eventHours: 24 }, false) },
    { label: 'rename-folder', script: buildClearScript({ renameFolder: true, force: true }, false) },
    { label: 'rename-folder-dry-run', script: buildClearScript({ renameFolder: true, force: true }, true) },
    {
      label: 'undo-acl',
      script: buildRestoreAclScript([
        { path: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys', sddl: 'O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)', directory: true },
        { path: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys\\f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c', sddl: 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)', directory: false },
      ]),
    },
    {
      label: 'undo-rename',
      script: buildRestoreFolderScript({
        path: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys',
        renamedTo: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys_old_20250101-120000',
        backup: 'C:\\ProgramData\\rdpfix\\backup\\20250101-120000-000-clear-machinekeys-rename',
        certificates: [{ thumbprint: '0123456789ABCDEF0123456789ABCDEF01234567', cer: '0123456789ABCDEF0123456789ABCDEF01234567.cer', reg: '0123456789ABCDEF0123456789ABCDEF01234567.reg', keyFile: null, keyDir: null, keySddl: null, keyRemoved: false }],
      }),
    },
  ];
}

// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'clear-machinekeys'))
    .usage('$0 [--target CHANNEL] [options]\n\nOn evidence only: back up, then repair the ACLs of the RDP key container(s) and the MachineKeys folder\n(by SID, for the Windows build), and regenerate the RDP certificate if its key is still unusable.')
    .option('regenerate', { type: 'boolean', default: true, describe: 'if the key is still unusable after the ACL repair, remove only the RDP certificate and its key and let TermService create new ones (--no-regenerate to stop after the ACLs)' })
    .option('restart', { type: 'boolean', default: true, describe: 'restart TermService after an ACL repair so it picks the key up (--no-restart to skip)' })
    .option('rename-folder', { type: 'boolean', default: false, describe: 'DRASTIC: rename MachineKeys to MachineKeys_old_<time> and start fresh (needs --force; every service\'s keys are in there)' })
    .option('force', { type: 'boolean', default: false, describe: 'go ahead although it is disruptive: restart TermService even when it disconnects the signed-in users listed; required to confirm --rename-folder' })
    .option('event-hours', { type: 'string', default: '72', describe: 'how far back events count as evidence (hours, 1-720)' })
    .option('timeout', { type: 'string', default: '60', describe: 'seconds to wait for TermService, the listener and a new certificate (10-600)' })
    .option('backup-dir', { type: 'string', describe: 'backup folder on the target (default C:\\ProgramData\\rdpfix\\backup)' })
    .example('$0 --dry-run --target azure://SUB/RG/VM', 'show the evidence and what would be repaired (runs as SYSTEM)')
    .example('$0 --target azure://SUB/RG/VM', 'repair on evidence, backed up; undo with undo.ts --last --yes')
    .example('$0 --emit > fix-keys.ps1', 'the script to paste into the Run command blade or a SYSTEM shell')
    .epilog('Never takeown /r, never a recursive grant: only the RDP key container(s) and the folder itself are touched.')
    .parseAsync();
  const flags = serverFlags(args);
  if (args['rename-folder'] && !args.force) throw new UsageError(RENAME_WARNING);
  const opts: ClearOptions = {
    regenerate: args.regenerate,
    restart: args.restart,
    renameFolder: args['rename-folder'],
    force: args.force,
    disconnectSessions: args.force,
    eventHours: validateInt(args['event-hours'], '--event-hours', 1, 720),
    timeoutSeconds: validateInt(args.timeout, '--timeout', 10, 600),
    ...(args['backup-dir'] !== undefined ? { backupRoot: backupRoot(args['backup-dir']) } : {}),
  };
  return serverMain(flags, {
    title: 'checking and repairing the RDP key permissions',
    emit: (dry) => buildClearScript(opts, dry),
    execute: (ctx) => clearMachineKeys(opts, ctx),
  });
}

if (isMain(import.meta.url)) await runCli(main);
