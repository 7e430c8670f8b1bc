// restart-termserv: restart Remote Desktop Services and prove the listener is back; optionally
// replace a broken self-signed RDP certificate.
//
// What it fixes: a TermService that is stopped, hung or holding a stale certificate (0x904/0x7,
// "nothing listens", "no certificate"). It restarts TermService with -Force (which stops
// UmRdpService too; that is started again), waits for Running with a timeout, confirms something
// listens on the RDP port again, and reports the certificate thumbprint before and after.
// --regenerate-cert: first backs up each certificate in the Remote Desktop store (Export-Certificate
// of the public cert, `reg export` of its store entry — certificate plus the link to its key — and a
// copy of its key container file) into C:\ProgramData\rdpfix\backup\<time>-restart-termserv, then
// removes it so the restart creates a fresh one, and verifies that it did (and that NETWORK SERVICE
// can read the new key). An orphaned SSLCertificateSHA1Hash pin (certificate gone or expired) is
// backed up and removed too — unlike Azure's ResetRDPCert it never forces SecurityLayer 0 or
// MinEncryptionLevel 1. A valid CA-issued pinned certificate is left alone unless --replace-pinned.
// Sessions: a restart disconnects every RDP session. Before anything changes it lists the signed-in
// sessions (WTS API: user, session id, state, client) and refuses when any but the caller's would be
// disconnected, unless --force; --dry-run reports them.
// When to use it: diagnose says no-listener, certificate-expired or certificate-key-unusable.
// Undo: a plain restart has nothing to undo. A regeneration is journaled: `npx tsx scripts/undo.ts
// --last --yes` re-imports the old store entry (and key, pin), removes the new certificate (backed up
// first) and restarts TermService.
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { backupRoot } from './lib/backup.ts';
// Re-exported until toggle-nla imports it from lib/backup.ts.
export { backupRoot } from './lib/backup.ts';
import { UsageError } from './lib/errors.ts';
import { buildScript, type PsExample } from './lib/ps.ts';
import { isSddl } from './lib/sddl.ts';
import { PS_BACKUP, PS_FACTS, PS_NATIVE, PS_REGISTRY, PS_SDDL, PS_SESSIONS, psJoin, RD_STORE, RD_STORE_REG, RDP_TCP_KEY } from './lib/server-ps.ts';
import {
  asArray,
  attachJournal,
  baseReport,
  journalChanges,
  nextCommand,
  psDate,
  psUndo,
  runStep,
  serverFlags,
  serverMain,
  serviceStatus,
  targetPath,
  withServerOptions,
  type Change,
  type RawResult,
  type StepContext,
  type StepReport,
} from './lib/server-step.ts';
import type { UndoSpec } from './lib/journal.ts';
import { psQuote } from './lib/ps.ts';
import type { CertificateFacts, EventFacts, EventRecord } from './inspect-server.ts';
import { validateInt, validatePort, validateThumbprint, validateWindowsPath } from './lib/validate.ts';


// ---------------------------------------------------------------- types

export interface RestartOptions {
  /** Seconds to wait for Running, for the listener and for a new certificate (default 60). */
  timeoutSeconds?: number;
  regenerateCert?: boolean;
  /** Regenerate only while this certificate is still in use/in the store; otherwise report ok. */
  onlyThumbprint?: string;
  /** Also remove the certificate's own key container (clear-machinekeys step 4). */
  removeKey?: boolean;
  /** Replace a valid pinned (CA-issued) certificate: remove the pin and fall back to self-signed. */
  replacePinned?: boolean;
  /** Restart even though other signed-in sessions are disconnected (--force). */
  disconnectSessions?: boolean;
  /** Backup root on the target (default C:\ProgramData\rdpfix\backup). */
  backupRoot?: string;
  /** Port to check for the listener (default: PortNumber from the registry). */
  port?: number;
}

/** What the target records about one certificate it backed up (and maybe removed). */
export interface CertBackupRecord {
  thumbprint: string;
  cer: string;
  reg: string;
  keyFile: string | null;
  keyDir: string | null;
  keySddl: string | null;
  keyRemoved: boolean;
}

export interface RestartState {
  services?: unknown;
  listening?: boolean;
  port?: number;
  certificate?: CertificateFacts;
}

/** One signed-in session as Get-RdpSession reports it (WTS API). */
export interface SessionRecord {
  id: number;
  user: string;
  state: string;
  client?: string | null;
  station?: string | null;
}

/** Get-RdpSession: the caller's own session id, how many are signed in, the first few, or an error. */
export interface SessionFacts {
  own?: number;
  count?: number;
  list?: SessionRecord[] | SessionRecord;
  error?: string | null;
}

export interface RestartRaw extends RawResult {
  restarted?: boolean;
  before?: RestartState;
  after?: RestartState | null;
  backup?: string | null;
  removed?: CertBackupRecord[] | CertBackupRecord | null;
  unpinned?: string | null;
  plan?: { remove?: string[] | string; unpin?: boolean; restart?: boolean };
  events?: EventFacts | null;
  note?: string | null;
  warnings?: string[] | string;
  problems?: string[] | string;
  refused?: 'sessions' | 'pinned' | null;
  sessions?: SessionFacts | null;
  restore?: string[] | string;
}

export interface RestartReport extends StepReport {
  thumbprintBefore: string | null;
  thumbprintAfter: string | null;
  restarted: boolean;
  events: EventRecord[];
  /** The signed-in sessions other than the caller's that a restart disconnects. */
  disconnects: SessionRecord[];
}

// ---------------------------------------------------------------- sessions

export interface SessionImpact {
  /** Other users' sessions a restart disconnects (the first few by name). */
  others: SessionRecord[];
  /** Signed-in sessions beyond those listed by name. */
  more: number;
  /** The caller's own session, when the caller is signed in on the server (the local channel). */
  own: SessionRecord | null;
  /** Why the list is unknown (then a restart is refused without --force, like a list of others). */
  unknown: string | null;
  /** True when a restart without --force must be refused. */
  blocks: boolean;
}

/**
 * Who a TermService restart disconnects: every signed-in session but the caller's. A stopped
 * TermService has none to lose. The same rule as the generated Test-RdpSessionBlock, re-checked here
 * on what the target reported.
 */
export function sessionImpact(facts: SessionFacts | null | undefined, termServiceRunning: boolean): SessionImpact {
  const none: SessionImpact = { others: [], more: 0, own: null, unknown: null, blocks: false };
  if (!termServiceRunning) return none;
  if (!facts) return { ...none, unknown: 'the target did not report its sessions', blocks: true };
  if (facts.error) return { ...none, unknown: facts.error, blocks: true };
  const list = asArray<SessionRecord>(facts.list).filter((x) => x && typeof x.id === 'number' && x.user);
  const own = list.find((x) => x.id === facts.own) ?? null;
  const others = list.filter((x) => x !== own);
  const more = Math.max(0, (typeof facts.count === 'number' ? facts.count : list.length) - list.length);
  return { others, more, own, unknown: null, blocks: others.length + more > 0 };
}

export const describeSession = (x: SessionRecord) => `${x.user} (session ${x.id}, ${x.state}${x.client ? `, from ${x.client}` : ''})`;

function sessionText(i: SessionImpact): string {
  return [...i.others.map(describeSession), ...(i.more ? [`${i.more} more`] : [])].join('; ');
}

// ---------------------------------------------------------------- PowerShell

/**
 * The PowerShell functions of this step, exported so clear-machinekeys runs the very same restart
 * and regeneration (step 4 of its repair) inside its own single script.
 */
export const RESTART_PS = `function Backup-RdpCertificate {
    # Export the public certificate, reg-export its store entry (the certificate with its properties,
    # so a reg import restores the link to its key) and copy its key container file; every file is
    # checked before anything changes.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$Certificate,
        [Parameter(Mandatory = $true)][string]$Folder,
        [AllowNull()]$Key
    )
    $thumbprint = $Certificate.Thumbprint
    $record = [ordered]@{ thumbprint = $thumbprint; cer = ($thumbprint + '.cer'); reg = ($thumbprint + '.reg'); keyFile = $null; keyDir = $null; keySddl = $null; keyRemoved = $false }
    if ($PSCmdlet.ShouldProcess($thumbprint, 'Back up the certificate and its key')) {
        $files = @((Join-Path -Path $Folder -ChildPath $record.cer), (Join-Path -Path $Folder -ChildPath $record.reg))
        $null = Export-Certificate -Cert $Certificate -FilePath $files[0] -Type CERT
        $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', (${psQuote(RD_STORE_REG)} + '\\' + $thumbprint), $files[1], '/y')
        if ($null -ne $Key -and $Key.file) {
            $record.keyFile = Split-Path -Path $Key.file -Leaf
            $record.keyDir = Split-Path -Path $Key.file -Parent
            $record.keySddl = $Key.sddl
            Copy-RdpFile -Source $Key.file -Destination $Folder
            $files += Join-Path -Path $Folder -ChildPath $record.keyFile
        }
        Assert-RdpBackupFile -Path $files
    }
    return $record
}

function Get-RdpCertRestoreLine {
    # The commands an administrator can paste on this server to put backed-up certificates back
    # (what rdpfix's undo does): remove the certificate Windows created since, copy a removed key
    # back, reg import each store entry (certificate and link to its key) and the pin, restart.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Folder,
        [object[]]$Record = @(),
        [AllowEmptyString()][string]$PinFile = '',
        [string[]]$NewThumbprint = @()
    )
    $lines = @()
    $old = @($Record | ForEach-Object -Process { $_.thumbprint })
    foreach ($thumbprint in @($NewThumbprint | Where-Object -FilterScript { $_ -and $old -notcontains $_ })) {
        $lines += ('Remove-Item -LiteralPath {0}' -f (ConvertTo-RdpLiteral -Value (Join-Path -Path ${psQuote(RD_STORE)} -ChildPath $thumbprint)))
    }
    foreach ($item in $Record) {
        if ($item.keyRemoved -and $item.keyFile -and $item.keyDir) {
            $lines += ('Copy-Item -LiteralPath {0} -Destination {1}' -f (ConvertTo-RdpLiteral -Value (Join-Path -Path $Folder -ChildPath $item.keyFile)), (ConvertTo-RdpLiteral -Value $item.keyDir))
        }
        $lines += ('reg.exe import {0}' -f (ConvertTo-RdpLiteral -Value (Join-Path -Path $Folder -ChildPath $item.reg)))
    }
    if ($PinFile) { $lines += ('reg.exe import {0}' -f (ConvertTo-RdpLiteral -Value $PinFile)) }
    $lines += 'Restart-Service -Name ''TermService'' -Force'
    return $lines
}

function Get-RdpServiceState {
    # Services, listener and certificate in use, for before/after.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][int]$Port)
    return [ordered]@{
        services = @(Get-RdpServiceSnapshot -Name @('TermService', 'UmRdpService'))
        listening = (@(Get-RdpListener -Port $Port).Count -gt 0)
        port = $Port
        certificate = Get-RdpCertificateState -WithKey
    }
}

function Restart-RdpService {
    # Restart TermService (-Force also stops UmRdpService, which is started again), wait for Running
    # and the listener. -RegenerateCert: back up, then remove the Remote Desktop store certificate(s)
    # (and an orphaned pin) first, and verify that a new certificate appeared.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [int]$TimeoutSeconds = 60,
        [switch]$RegenerateCert,
        [AllowEmptyString()][string]$OnlyThumbprint = '',
        [switch]$RemoveKey,
        [switch]$ReplacePinned,
        [switch]$DisconnectSessions,
        [AllowEmptyString()][string]$BackupRoot = '',
        [int]$Port = 0
    )
    $started = Get-Date
    if ($Port -le 0) { $Port = Get-RdpPort }
    $result = [ordered]@{
        step = 'restart-termserv'; status = 'failed'; error = $null; note = $null; restarted = $false
        before = Get-RdpServiceState -Port $Port; after = $null; backup = $null; removed = @(); unpinned = $null
        plan = [ordered]@{ remove = @(); unpin = $false; restart = $true }; problems = @(); warnings = @(); events = $null
        refused = $null; sessions = $null; restore = @()
    }
    try {
        $certificate = $result.before.certificate
        $toRemove = @()
        if ($RegenerateCert) {
            $inStore = $false
            if ($OnlyThumbprint) { $inStore = Test-Path -LiteralPath (Join-Path -Path ${psQuote(RD_STORE)} -ChildPath $OnlyThumbprint) }
            if ($OnlyThumbprint -and -not $inStore -and $certificate.thumbprint -ne $OnlyThumbprint -and $certificate.pinned -ne $OnlyThumbprint) {
                $result.status = 'ok'
                $result.note = ('the certificate {0} is no longer in use nor in the Remote Desktop store: nothing to regenerate' -f $OnlyThumbprint)
                $result.plan.restart = $false
                $result.after = $result.before
                return $result
            }
            if ($certificate.source -eq 'pinned') {
                $expired = ($null -ne $certificate.inUse -and $certificate.inUse.NotAfter -lt (Get-Date))
                if (-not $expired -and -not $ReplacePinned) {
                    $result.refused = 'pinned'
                    throw ('the listener uses the pinned certificate {0} (SSLCertificateSHA1Hash), which Windows does not regenerate; renew it with its CA, or pass --replace-pinned to remove the pin and fall back to a self-signed certificate' -f $certificate.pinned)
                }
                $result.plan.unpin = $true
            } elseif ($certificate.source -eq 'pinned-missing') {
                $result.plan.unpin = $true
            }
            if (Test-Path -LiteralPath ${psQuote(RD_STORE)}) {
                $toRemove = @(Get-ChildItem -LiteralPath ${psQuote(RD_STORE)} | Where-Object -FilterScript { -not $OnlyThumbprint -or $_.Thumbprint -eq $OnlyThumbprint -or $certificate.pinned -eq $OnlyThumbprint })
            }
            $result.plan.remove = @($toRemove | ForEach-Object -Process { $_.Thumbprint })
        }
        # Who a restart disconnects, decided before anything changes (a dry run reports it too).
        $termService = @($result.before.services | Where-Object -FilterScript { $_.Name -eq 'TermService' })
        $running = ($termService.Count -gt 0 -and [string]$termService[0].Status -eq 'Running')
        $result.sessions = Get-RdpSession
        $block = Test-RdpSessionBlock -Sessions $result.sessions -Running $running
        if ($block -and -not $DisconnectSessions -and -not $WhatIfPreference) {
            $result.refused = 'sessions'
            throw $block
        }
        $pinFile = ''
        if ($toRemove.Count -gt 0 -or $result.plan.unpin) {
            if ($PSCmdlet.ShouldProcess(${psQuote(RD_STORE)}, 'Back up, then remove the certificate(s) so TermService creates a new one')) {
                $folder = New-RdpBackupFolder -Root $BackupRoot -Step 'restart-termserv'
                $result.backup = $folder
                $records = @()
                foreach ($item in $toRemove) { $records += Backup-RdpCertificate -Certificate $item -Folder $folder -Key (Get-RdpKeyFile -Certificate $item) }
                if ($result.plan.unpin) {
                    $pinFile = Join-Path -Path $folder -ChildPath 'rdp-tcp.reg'
                    $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', ${psQuote(RDP_TCP_KEY.replace(':', ''))}, $pinFile, '/y')
                    Assert-RdpBackupFile -Path @($pinFile)
                }
                # Every backup is written and checked; only now does anything change.
                foreach ($record in $records) {
                    Remove-Item -LiteralPath (Join-Path -Path ${psQuote(RD_STORE)} -ChildPath $record.thumbprint) -Confirm:$false
                    if ($RemoveKey -and $record.keyFile) {
                        Remove-Item -LiteralPath (Join-Path -Path $record.keyDir -ChildPath $record.keyFile) -Force -Confirm:$false
                        $record.keyRemoved = $true
                    }
                    $result.removed += $record
                }
                if ($result.plan.unpin) {
                    Remove-ItemProperty -LiteralPath ${psQuote(RDP_TCP_KEY)} -Name 'SSLCertificateSHA1Hash' -Confirm:$false
                    $result.unpinned = $certificate.pinned
                }
                $result.restore = @(Get-RdpCertRestoreLine -Folder $folder -Record $result.removed -PinFile $pinFile)
            }
        }
        if ($PSCmdlet.ShouldProcess('TermService', 'Restart (with -Force: UmRdpService is stopped and started again)')) {
            $umRdp = Get-Service -Name 'UmRdpService' -ErrorAction SilentlyContinue
            $umWasRunning = ($null -ne $umRdp -and $umRdp.Status -eq 'Running')
            Restart-Service -Name 'TermService' -Force -Confirm:$false
            $result.restarted = $true
            try {
                (Get-Service -Name 'TermService').WaitForStatus('Running', [TimeSpan]::FromSeconds($TimeoutSeconds))
            } catch {
                $result.problems += ('TermService did not reach Running within {0} s' -f $TimeoutSeconds)
            }
            if ($umWasRunning) { Start-Service -Name 'UmRdpService' -Confirm:$false }
            $null = Wait-RdpListener -Port $Port -TimeoutSeconds $TimeoutSeconds
            $removedThumbprints = @($result.removed | ForEach-Object -Process { $_.thumbprint })
            $after = Get-RdpServiceState -Port $Port
            if ($RegenerateCert) {
                $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
                while ((-not $after.certificate.thumbprint -or $removedThumbprints -contains $after.certificate.thumbprint) -and (Get-Date) -lt $deadline) {
                    Start-Sleep -Seconds 2
                    $after = Get-RdpServiceState -Port $Port
                }
            }
            $result.after = $after
            if ($result.restore.Count -gt 0) { $result.restore = @(Get-RdpCertRestoreLine -Folder $result.backup -Record $result.removed -PinFile $pinFile -NewThumbprint @($after.certificate.thumbprint)) }
            $termService = @($after.services | Where-Object -FilterScript { $_.Name -eq 'TermService' })
            if ($termService.Count -eq 0 -or [string]$termService[0].Status -ne 'Running') { $result.problems += 'TermService is not running' }
            if (-not $after.listening) { $result.problems += ('nothing listens on port {0}' -f $Port) }
            if ($RegenerateCert) {
                if (-not $after.certificate.thumbprint -or $removedThumbprints -contains $after.certificate.thumbprint) {
                    $result.problems += 'Windows did not create a new certificate'
                } elseif ($null -ne $after.certificate.key -and $after.certificate.key.sddl) {
                    if (-not (Test-RdpSddlAccess -Sddl $after.certificate.key.sddl -Sid @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-6', 'S-1-5-32-545') -Mask 0x120089)) {
                        $result.problems += 'NETWORK SERVICE cannot read the new certificate''s key'
                    }
                } else {
                    $result.warnings += 'the new key''s ACL could not be read by this account'
                }
            }
            if ($result.problems.Count -gt 0) { $result.status = 'failed' } else { $result.status = 'changed' }
        } else {
            $result.status = 'would-change'
        }
    } catch {
        $result.status = 'failed'
        $result.error = $_.Exception.Message
    }
    if ($result.status -eq 'failed') {
        $result.events = Get-RdpEventSummary -Since $started.AddMinutes(-10) -Max 4 -MessageLength 100 -Provider @('Service Control Manager', 'Microsoft-Windows-TerminalServices-RemoteConnectionManager', 'Schannel')
    }
    return $result
}

function Restore-RdpCertificate {
    # Undo of a regeneration: put the backed-up store entries (and key files, ACLs, pin) back, after
    # backing up and removing the certificates Windows created since; restart and verify.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$BackupPath,
        [object[]]$Certificates = @(),
        [AllowEmptyString()][string]$Unpinned = '',
        [int]$TimeoutSeconds = 60,
        [AllowEmptyString()][string]$BackupRoot = ''
    )
    $port = Get-RdpPort
    $result = [ordered]@{ step = 'restart-termserv-undo'; status = 'failed'; error = $null; before = Get-RdpCertificateState; after = $null; backup = $null; restored = @(); problems = @() }
    try {
        $files = @()
        foreach ($item in $Certificates) {
            $files += Join-Path -Path $BackupPath -ChildPath $item.reg
            if ($item.keyRemoved) { $files += Join-Path -Path $BackupPath -ChildPath $item.keyFile }
        }
        Assert-RdpBackupFile -Path $files
        $wanted = @($Certificates | ForEach-Object -Process { $_.thumbprint })
        $missing = @($wanted | Where-Object -FilterScript { -not (Test-Path -LiteralPath (Join-Path -Path ${psQuote(RD_STORE)} -ChildPath $_)) })
        if ($missing.Count -eq 0 -and (-not $Unpinned -or $result.before.pinned -eq $Unpinned)) {
            $result.status = 'ok'
            $result.after = $result.before
            return $result
        }
        if ($PSCmdlet.ShouldProcess(${psQuote(RD_STORE)}, ('Restore the certificate(s) from {0}' -f $BackupPath))) {
            $folder = New-RdpBackupFolder -Root $BackupRoot -Step 'undo-restart-termserv'
            $result.backup = $folder
            if (Test-Path -LiteralPath ${psQuote(RD_STORE)}) {
                foreach ($item in @(Get-ChildItem -LiteralPath ${psQuote(RD_STORE)} | Where-Object -FilterScript { $wanted -notcontains $_.Thumbprint })) {
                    $null = Backup-RdpCertificate -Certificate $item -Folder $folder -Key (Get-RdpKeyFile -Certificate $item)
                    Remove-Item -LiteralPath (Join-Path -Path ${psQuote(RD_STORE)} -ChildPath $item.Thumbprint) -Confirm:$false
                }
            }
            foreach ($item in $Certificates) {
                if ($item.keyRemoved -and $item.keyDir) {
                    $keyPath = Join-Path -Path $item.keyDir -ChildPath $item.keyFile
                    Copy-RdpFile -Source (Join-Path -Path $BackupPath -ChildPath $item.keyFile) -Destination $item.keyDir
                    if ($item.keySddl) {
                        Set-RdpPathSddl -Path $keyPath -Sddl $item.keySddl
                        $owner = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $item.keySddl).Owner
                        if ($null -ne $owner) { $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($keyPath, '/setowner', ('*' + $owner.Value)) }
                    }
                }
                $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('import', (Join-Path -Path $BackupPath -ChildPath $item.reg))
                $result.restored += $item.thumbprint
            }
            if ($Unpinned) {
                $bytes = [byte[]]@(for ($i = 0; $i -lt $Unpinned.Length; $i += 2) { [Convert]::ToByte($Unpinned.Substring($i, 2), 16) })
                $null = New-ItemProperty -LiteralPath ${psQuote(RDP_TCP_KEY)} -Name 'SSLCertificateSHA1Hash' -PropertyType Binary -Value $bytes -Force
            }
            Restart-Service -Name 'TermService' -Force -Confirm:$false
            try {
                (Get-Service -Name 'TermService').WaitForStatus('Running', [TimeSpan]::FromSeconds($TimeoutSeconds))
            } catch {
                $result.problems += ('TermService did not reach Running within {0} s' -f $TimeoutSeconds)
            }
            if (@(Wait-RdpListener -Port $port -TimeoutSeconds $TimeoutSeconds).Count -eq 0) { $result.problems += ('nothing listens on port {0}' -f $port) }
            $result.after = Get-RdpCertificateState
            foreach ($thumbprint in $wanted) {
                if (-not (Test-Path -LiteralPath (Join-Path -Path ${psQuote(RD_STORE)} -ChildPath $thumbprint))) { $result.problems += ('{0} is not back in the store' -f $thumbprint) }
            }
            if ($Unpinned -and $result.after.pinned -ne $Unpinned) { $result.problems += 'the SSLCertificateSHA1Hash pin was not restored' }
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

/** Every function a restart (or its undo) needs, in dependency order. */
export function restartFunctions(): string {
  return psJoin(PS_REGISTRY, PS_SDDL, PS_NATIVE, PS_BACKUP, PS_FACTS, PS_SESSIONS, RESTART_PS);
}

const DROP = ['before.certificate.store', 'after.certificate.store', 'events.newest', 'before.certificate.key.sddl', 'before.services', 'sessions.list'];

/** The generated script for one restart. */
export function buildRestartScript(opts: RestartOptions, dryRun: boolean): string {
  const params = {
    TimeoutSeconds: opts.timeoutSeconds ?? 60,
    RegenerateCert: !!opts.regenerateCert,
    OnlyThumbprint: opts.onlyThumbprint ?? '',
    RemoveKey: !!opts.removeKey,
    ReplacePinned: !!opts.replacePinned,
    DisconnectSessions: !!opts.disconnectSessions,
    BackupRoot: opts.backupRoot ?? '',
    Port: opts.port ?? 0,
    DryRun: dryRun,
  };
  const call = `$Result = Restart-RdpService -TimeoutSeconds $P.TimeoutSeconds -RegenerateCert:$P.RegenerateCert -OnlyThumbprint $P.OnlyThumbprint -RemoveKey:$P.RemoveKey -ReplacePinned:$P.ReplacePinned -DisconnectSessions:$P.DisconnectSessions -BackupRoot $P.BackupRoot -Port $P.Port -WhatIf:$P.DryRun
$Result = Compress-RdpResult -Result $Result -Drop ${psArray(DROP)}`;
  return buildScript({
    name: 'restart-termserv',
    summary: opts.regenerateCert ? 'back up and remove the RDP certificate, restart TermService, verify a new one' : 'restart TermService and verify the listener',
    params,
    body: psJoin(restartFunctions(), call),
  });
}

const psArray = (items: string[]) => `@(${items.map(psQuote).join(', ')})`;

// ---------------------------------------------------------------- undo

/** Validate what the target reported before it is embedded in an undo script. */
export function validRecords(value: unknown): CertBackupRecord[] | null {
  const out: CertBackupRecord[] = [];
  for (const r of asArray<Partial<CertBackupRecord>>(value)) {
    try {
      const thumbprint = validateThumbprint(String(r?.thumbprint ?? ''));
      if (r?.reg !== `${thumbprint}.reg` || r?.cer !== `${thumbprint}.cer`) return null;
      const keyFile = r.keyFile ?? null;
      if (keyFile !== null && !/^[0-9a-f]{32}_[0-9a-f-]{36}$/i.test(keyFile) && !/^[0-9a-f]{40}_[0-9a-f-]{36}$/i.test(keyFile)) return null;
      const keyDir = r.keyDir ? validateWindowsPath(r.keyDir, 'key folder from the target') : null;
      const keySddl = r.keySddl && isSddl(r.keySddl) ? r.keySddl : null;
      out.push({ thumbprint, cer: r.cer, reg: r.reg, keyFile, keyDir, keySddl, keyRemoved: !!r.keyRemoved && !!keyFile && !!keyDir });
    } catch {
      return null;
    }
  }
  return out;
}

export interface RegenUndoData {
  backup: string;
  certificates: CertBackupRecord[];
  unpinned: string | null;
  timeoutSeconds?: number;
}

/** The undo of a regeneration: a generated script for the same target. */
export function buildRestoreCertScript(data: RegenUndoData): string {
  const params = {
    BackupPath: data.backup,
    Certificates: data.certificates.map((c) => ({ ...c })),
    Unpinned: data.unpinned ?? '',
    TimeoutSeconds: data.timeoutSeconds ?? 60,
    DryRun: false,
  };
  const call = `$Result = Restore-RdpCertificate -BackupPath $P.BackupPath -Certificates @($P.Certificates) -Unpinned $P.Unpinned -TimeoutSeconds $P.TimeoutSeconds -WhatIf:$P.DryRun`;
  return buildScript({ name: 'restart-termserv-undo', summary: `restore the RDP certificate(s) backed up in ${data.backup}`, params, body: psJoin(restartFunctions(), call) });
}

function safeThumbprint(v: string): string | null {
  try {
    return validateThumbprint(v);
  } catch {
    return null;
  }
}

/** The journal change for a regeneration (or none when nothing was removed or unpinned). */
export function regenChange(raw: RestartRaw, ctx: StepContext, timeoutSeconds?: number): Change | null {
  const removed = asArray<CertBackupRecord>(raw.removed);
  if (!removed.length && !raw.unpinned) return null;
  const backup = targetPath(raw.backup);
  const records = validRecords(raw.removed);
  const unpinned = raw.unpinned ? safeThumbprint(raw.unpinned) : null;
  const thumbs = removed.map((r) => r.thumbprint).join(', ');
  const summary = `removed RDP certificate(s) ${thumbs || '(none)'}${raw.unpinned ? ` and the SSLCertificateSHA1Hash pin ${raw.unpinned}` : ''} so TermService creates a new one`;
  let undo: UndoSpec;
  if (!backup || !records || (raw.unpinned && !unpinned)) {
    undo = { kind: 'none', reason: `the target reported backup details rdpfix will not embed in a script; restore by hand from ${String(raw.backup)} (reg import <thumbprint>.reg, copy the key file back)` };
  } else {
    undo = psUndo(ctx, buildRestoreCertScript({ backup, certificates: records, unpinned, ...(timeoutSeconds ? { timeoutSeconds } : {}) }));
  }
  return {
    summary,
    before: { thumbprint: raw.before?.certificate?.thumbprint ?? null, removed: removed.map((r) => r.thumbprint), pinned: raw.unpinned ?? null },
    after: { thumbprint: raw.after?.certificate?.thumbprint ?? null },
    backup: backup ?? null,
    undo,
  };
}

// ---------------------------------------------------------------- interpretation

const termStatus = (s?: RestartState | null) =>
  serviceStatus(asArray<{ Name?: string; Status?: unknown }>(s?.services).find((x) => x?.Name === 'TermService')?.Status) ?? 'unknown';

/** The restart-termserv arguments that repeat this run (for next-step commands). */
function cliArgs(opts: RestartOptions, extra: { force?: boolean; replacePinned?: boolean } = {}): string[] {
  const a: string[] = [];
  if (opts.regenerateCert) a.push('--regenerate-cert');
  if (opts.onlyThumbprint) a.push('--thumbprint', opts.onlyThumbprint);
  if (opts.removeKey) a.push('--remove-key');
  if (opts.replacePinned || extra.replacePinned) a.push('--replace-pinned');
  if (opts.disconnectSessions || extra.force) a.push('--force');
  return a;
}

/** Turn the raw result into a report (pure; tested on fixtures). */
export function interpretRestart(raw: RestartRaw, ctx: StepContext, opts: RestartOptions = {}): RestartReport {
  const running = termStatus(raw.before) === 'Running';
  // A result without a services list (dropped to fit 4 KB) was judged by the target itself.
  const impact = sessionImpact(raw.sessions, raw.before?.services === undefined ? true : running);
  const r: RestartReport = {
    ...baseReport('restart-termserv', ctx),
    thumbprintBefore: raw.before?.certificate?.thumbprint ?? null,
    thumbprintAfter: raw.after?.certificate?.thumbprint ?? null,
    restarted: !!raw.restarted,
    events: asArray<EventRecord>(raw.events?.newest),
    disconnects: impact.others,
    before: raw.before ?? null,
    after: raw.after ?? null,
    backup: raw.backup ?? null,
  };
  const removed = asArray<CertBackupRecord>(raw.removed).map((x) => x.thumbprint);
  const problems = asArray<string>(raw.problems);
  // Check the target's verdict: a "changed" with the old certificate still in use, or the service
  // down, is a failed verification whatever the script concluded.
  if (raw.status === 'changed') {
    // (services may have been dropped to fit 4 KB; the target checked them too)
    if (raw.after?.services !== undefined && termStatus(raw.after) !== 'Running') problems.push('TermService is not running after the restart');
    if (raw.after && raw.after.listening === false) problems.push(`nothing listens on port ${raw.after.port ?? 3389}`);
    if (opts.regenerateCert && (!r.thumbprintAfter || removed.includes(r.thumbprintAfter))) problems.push('no new certificate is in use');
  }
  const status = ['ok', 'changed', 'would-change', 'failed'].includes(raw.status) ? (raw.status as RestartReport['status']) : 'failed';
  r.status = status === 'changed' && problems.length ? 'failed' : status;
  r.warnings.push(...asArray<string>(raw.warnings));
  if (raw.error) r.error = raw.error;
  // The refusal is TypeScript's decision too: a restart that disconnected others without --force
  // is reported as such, whatever the target concluded.
  if (raw.restarted && impact.blocks && !opts.disconnectSessions) {
    r.warnings.push(`TermService was restarted without --force although it disconnected ${sessionText(impact) || `sessions (${impact.unknown})`}`);
  }
  const refusedForSessions = raw.refused === 'sessions' || (r.status === 'failed' && !raw.restarted && impact.blocks && !opts.disconnectSessions && /disconnect/.test(raw.error ?? ''));

  const port = raw.after?.port ?? raw.before?.port ?? opts.port ?? 3389;
  const plan = raw.plan ?? {};
  const planRemove = asArray<string>(plan.remove);
  const disconnectText = impact.unknown ? `may disconnect signed-in users (the sessions could not be listed: ${impact.unknown})` : `disconnects ${impact.others.length + impact.more} session(s): ${sessionText(impact)}`;
  switch (r.status) {
    case 'ok':
      r.summary = raw.note ?? 'nothing to do';
      break;
    case 'would-change':
      r.summary = `would ${planRemove.length || plan.unpin ? `back up and remove ${[planRemove.length ? `certificate(s) ${planRemove.join(', ')}` : '', plan.unpin ? 'the SSLCertificateSHA1Hash pin' : ''].filter(Boolean).join(' and ')}, then ` : ''}restart TermService (currently ${termStatus(raw.before)}, certificate ${r.thumbprintBefore ?? 'none'})${impact.blocks ? `; that ${disconnectText}${opts.disconnectSessions ? '' : ', so the real run refuses without --force'}` : ''}`;
      break;
    case 'changed':
      r.summary = `TermService restarted and listening on port ${port}; certificate ${r.thumbprintBefore ?? 'none'} → ${r.thumbprintAfter ?? 'none'}`;
      break;
    default:
      r.summary = refusedForSessions
        ? `refused: restarting TermService ${disconnectText}; nothing was changed (pass --force to restart anyway)`
        : raw.error ?? (problems.length ? problems.join('; ') : 'the restart failed');
  }
  r.evidence.push(`before: TermService ${termStatus(raw.before)}, ${raw.before?.listening ? 'listening' : 'not listening'}, certificate ${r.thumbprintBefore ?? 'none'}`);
  if (raw.sessions && !impact.unknown) {
    const signedIn = impact.others.length + impact.more + (impact.own ? 1 : 0);
    r.evidence.push(signedIn ? `signed in: ${[...(impact.own ? [`${describeSession(impact.own)} (this session)`] : []), sessionText(impact)].filter(Boolean).join('; ')}` : 'signed in: nobody');
  }
  if (impact.own && (raw.restarted || r.status === 'would-change')) r.warnings.push(`your own session ${impact.own.id} is disconnected by the restart too`);
  if (raw.after) r.evidence.push(`after: TermService ${termStatus(raw.after)}, ${raw.after.listening ? 'listening' : 'not listening'}, certificate ${r.thumbprintAfter ?? 'none'}`);
  if (status === 'changed' && problems.length) r.evidence.push(...problems.map((p) => `verification: ${p}`));
  const na = psDate(raw.after?.certificate?.inUse?.NotAfter);
  if (na && r.status === 'changed') r.evidence.push(`new certificate valid until ${na.toISOString().slice(0, 10)}`);
  for (const e of r.events) r.evidence.push(`event ${e.Id} ${e.ProviderName ?? ''} ${psDate(e.TimeCreated)?.toISOString() ?? ''}: ${e.Message ?? ''}`.trim());
  if (refusedForSessions) {
    r.next.push(nextCommand('restart-termserv', cliArgs(opts, { force: true }), ctx));
    r.notes.push('tell the users listed first: the restart ends their connection (their sessions stay, and they can reconnect when the listener is back)');
  } else if (r.status === 'failed' && !raw.restarted && (raw.refused === 'pinned' || /pinned certificate/.test(raw.error ?? ''))) {
    r.next.push(nextCommand('restart-termserv', cliArgs(opts, { replacePinned: true }), ctx));
  } else if (r.status === 'failed' && opts.regenerateCert && !opts.removeKey) {
    r.next.push(nextCommand('clear-machinekeys', opts.disconnectSessions ? ['--force'] : [], ctx));
  } else if (r.status === 'failed') {
    r.next.push(nextCommand('inspect-server', [], ctx));
  }
  if (r.status === 'changed') r.notes.push('probe RDP from your workstation: npx tsx scripts/diagnose.ts HOST');
  if (r.status === 'would-change') r.next.push(nextCommand('restart-termserv', cliArgs(opts, { force: impact.blocks }), ctx));
  return r;
}

/** Restart TermService on a target (and regenerate its certificate); journals what it removed. */
export async function restartTermserv(opts: RestartOptions, ctx: StepContext): Promise<RestartReport> {
  const raw = await runStep<RestartRaw>(ctx, buildRestartScript(opts, ctx.dryRun));
  const report = interpretRestart(raw, ctx, opts);
  const change = regenChange(raw, ctx, opts.timeoutSeconds);
  if (change) {
    attachJournal(report, await journalChanges(ctx, 'restart-termserv', [change]), ctx);
    if (report.status === 'failed' && report.undo) {
      report.next.unshift(report.undo);
      report.notes.push(`the first command puts the old certificate back (${change.summary})`);
    }
  }
  return report;
}

// ---------------------------------------------------------------- examples

const SAMPLE_RECORD: CertBackupRecord = {
  thumbprint: '0123456789ABCDEF0123456789ABCDEF01234567',
  cer: '0123456789ABCDEF0123456789ABCDEF01234567.cer',
  reg: '0123456789ABCDEF0123456789ABCDEF01234567.reg',
  keyFile: 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c',
  keyDir: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys',
  keySddl: 'O:SYG:SYD:(A;;FA;;;SY)(A;;0x120089;;;NS)(A;;FA;;;S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833)',
  keyRemoved: true,
};

export function psExamples(): PsExample[] {
  return [
    { label: 'restart', script: buildRestartScript({}, false) },
    { label: 'restart-dry-run', script: buildRestartScript({}, true) },
    { label: 'regenerate', script: buildRestartScript({ regenerateCert: true, onlyThumbprint: SAMPLE_RECORD.thumbprint, timeoutSeconds: 90 }, false) },
    { label: 'regenerate-dry-run', script: buildRestartScript({ regenerateCert: true }, true) },
    { label: 'undo-regenerate', script: buildRestoreCertScript({ backup: 'C:\\ProgramData\\rdpfix\\backup\\20250101-120000-000-restart-termserv', certificates: [SAMPLE_RECORD], unpinned: null }) },
  ];
}

// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'restart-termserv'))
    .usage('$0 [--regenerate-cert [--thumbprint T]] [--target CHANNEL] [options]\n\nRestart Remote Desktop Services, wait for it and for the listener, and report the certificate before and\nafter. --regenerate-cert backs up and removes the RDP certificate first so Windows creates a fresh one.')
    .option('regenerate-cert', { type: 'boolean', default: false, describe: 'back up and remove the Remote Desktop store certificate(s) (and an orphaned pin) so the restart creates a new one' })
    .option('thumbprint', { type: 'string', describe: 'regenerate only while this certificate is still in use (a second run then reports ok)' })
    .option('remove-key', { type: 'boolean', default: false, describe: "also remove the certificate's own key container (backed up); for an unreadable key" })
    .option('force', { type: 'boolean', default: false, describe: 'restart although it disconnects the signed-in users listed (without it, other sessions make it refuse)' })
    .option('replace-pinned', { type: 'boolean', default: false, describe: 'with --regenerate-cert: replace a valid pinned (CA-issued) certificate: remove the pin, fall back to self-signed' })
    .option('timeout', { type: 'string', default: '60', describe: 'seconds to wait for Running, the listener and a new certificate (10-600)' })
    .option('port', { type: 'string', describe: 'port to check for the listener (default: PortNumber from the registry)' })
    .option('backup-dir', { type: 'string', describe: 'backup folder on the target (default C:\\ProgramData\\rdpfix\\backup)' })
    .example('$0 --target azure://SUB/RG/VM', 'restart through Run Command and check the listener')
    .example('$0 --dry-run --target winrm://vm1', 'who would be disconnected, and what would change')
    .example('$0 --force --target winrms://vm1', 'restart although other users are signed in')
    .example('$0 --regenerate-cert --emit > regen.ps1', 'the script to paste on the server')
    .epilog('Undo a regeneration: npx tsx scripts/undo.ts --last --yes')
    .parseAsync();
  const flags = serverFlags(args);
  if ((args.thumbprint !== undefined || args['remove-key'] || args['replace-pinned']) && !args['regenerate-cert']) {
    throw new UsageError('--thumbprint, --remove-key and --replace-pinned only apply with --regenerate-cert');
  }
  const opts: RestartOptions = {
    timeoutSeconds: validateInt(args.timeout, '--timeout', 10, 600),
    regenerateCert: args['regenerate-cert'],
    removeKey: args['remove-key'],
    replacePinned: args['replace-pinned'],
    disconnectSessions: args.force,
    ...(args.thumbprint !== undefined ? { onlyThumbprint: validateThumbprint(args.thumbprint) } : {}),
    ...(args.port !== undefined ? { port: validatePort(args.port, '--port') } : {}),
    ...(args['backup-dir'] !== undefined ? { backupRoot: backupRoot(args['backup-dir']) } : {}),
  };
  return serverMain(flags, {
    title: opts.regenerateCert ? 'regenerating the RDP certificate' : 'restarting TermService',
    emit: (dry) => buildRestartScript(opts, dry),
    execute: (ctx) => restartTermserv(opts, ctx),
  });
}


if (isMain(import.meta.url)) await runCli(main);
