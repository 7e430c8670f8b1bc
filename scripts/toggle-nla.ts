// toggle-nla: show or change Network Level Authentication (UserAuthentication) and the RDP security
// layer, honestly about Group Policy, with a built-in expiry for temporary weakening.
//
// What it fixes: "NLA required" (failure code 5) for a client that cannot do CredSSP, and security
// layer mismatches (code 1/2). `status` shows the local values (RDP-Tcp), the Group Policy values
// (…\Policies\Microsoft\Windows NT\Terminal Services, which win when set) and which is in force.
// `enable` / `disable` / `--security-layer rdp|negotiate|tls` / `--min-encryption-level N` change
// the local values through the WMI Win32_TSGeneralSetting methods (registry as fallback), in an
// order Windows accepts, and refuse invalid combinations (SecurityLayer 2 with MinEncryptionLevel 1).
// When a policy value overrides the change it refuses and says so, instead of reporting a success
// that has no effect (Azure's DisableNLA does); `--policy` changes the policy value too.
// Disabling NLA is a security downgrade that EDR rules flag: it says so, and `--for 2h` registers a
// one-time scheduled task (SYSTEM) on the target that puts the previous values back when the time
// is up. `enable` removes that task.
// Undo: every change is backed up on the target (reg export + values.json) and journaled;
// `toggle-nla --restore` puts the newest recorded values back from the target itself (works with
// --emit and from any machine); `npx tsx scripts/undo.ts --last --yes` does it from the journal.
// Only values still as rdpfix left them are restored; anything changed since is reported and kept.
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { list, markUndone } from './lib/journal.ts';
import { buildScript, psQuote, type PsExample } from './lib/ps.ts';
import { POLICY_KEY, PS_BACKUP, PS_LITERAL, PS_NATIVE, PS_REGISTRY, psJoin, RDP_TCP_KEY, REENABLE_TASK } from './lib/server-ps.ts';
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
  type RawResult,
  type StepContext,
  type StepReport,
} from './lib/server-step.ts';
import { describeTarget } from './lib/channels.ts';
import { combinationProblem, effectiveSecurity, type EffectiveSecurity } from './lib/server-facts.ts';
import { backupRoot } from './restart-termserv.ts';
import { validateDuration, validateInt } from './lib/validate.ts';

// ---------------------------------------------------------------- types

export type NlaMode = 'status' | 'enable' | 'disable' | 'set' | 'restore';
export type Layer = 'rdp' | 'negotiate' | 'tls';
export const LAYERS: Record<Layer, number> = { rdp: 0, negotiate: 1, tls: 2 };
const NAMES = ['UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel'] as const;
export type SettingName = (typeof NAMES)[number];

export interface NlaOptions {
  mode: NlaMode;
  securityLayer?: Layer;
  minEncryptionLevel?: number;
  /** Also change the Group Policy value when one overrides the local value. */
  policy?: boolean;
  /** Seconds until the scheduled task puts the previous values back (disable / --security-layer rdp). */
  forSeconds?: number;
  backupRoot?: string;
}

/** One value change as the target records it. */
export interface ValueChange {
  scope: 'local' | 'policy';
  name: SettingName;
  before: number | null;
  after: number | null;
  via?: string | null;
}

export interface SecurityState {
  local?: Record<string, unknown>;
  policy?: Record<string, unknown>;
  task?: { name?: string; state?: string; nextRun?: string | null } | null;
  domainJoined?: boolean | null;
}

export interface NlaRaw extends RawResult {
  mode?: string;
  refused?: string | null;
  note?: string | null;
  warnings?: string[] | string;
  before?: SecurityState;
  after?: SecurityState | null;
  plan?: ValueChange[] | ValueChange;
  changed?: ValueChange[] | ValueChange;
  restored?: ValueChange[] | ValueChange;
  skipped?: string[] | string;
  backup?: string | null;
  task?: { name: string; due: string } | null;
  taskRemoved?: boolean;
  restoredFrom?: string | null;
  problems?: string[] | string;
}

export interface NlaReport extends StepReport {
  mode: NlaMode;
  effectiveBefore: EffectiveSecurity | null;
  effectiveAfter: EffectiveSecurity | null;
  changes: ValueChange[];
  task: { name: string; due: string } | null;
  refused: string | null;
}

// ---------------------------------------------------------------- decisions

/** The values to set, from the options. */
export function desiredValues(o: NlaOptions): Partial<Record<SettingName, number>> {
  const d: Partial<Record<SettingName, number>> = {};
  if (o.mode === 'enable') d.UserAuthentication = 1;
  if (o.mode === 'disable') d.UserAuthentication = 0;
  if (o.securityLayer) d.SecurityLayer = LAYERS[o.securityLayer];
  if (o.minEncryptionLevel !== undefined) d.MinEncryptionLevel = o.minEncryptionLevel;
  return d;
}

/**
 * The order Windows accepts: the WMI SetSecurityLayer refuses 2 (TLS) while MinEncryptionLevel is 1,
 * so when moving to TLS the encryption level goes first; otherwise the layer goes first (so leaving
 * TLS happens before lowering the level).
 */
export function applyOrder(d: Partial<Record<SettingName, number>>): SettingName[] {
  return d.SecurityLayer === 2 ? ['MinEncryptionLevel', 'SecurityLayer', 'UserAuthentication'] : ['SecurityLayer', 'MinEncryptionLevel', 'UserAuthentication'];
}

/** Static checks on the requested values (the target re-checks against its current values). */
export function validateOptions(o: NlaOptions): void {
  const d = desiredValues(o);
  const combo = combinationProblem(d.SecurityLayer ?? null, d.MinEncryptionLevel ?? null);
  if (combo) throw new UsageError(`${combo}: choose --min-encryption-level 2 or higher with --security-layer tls`);
  if (d.UserAuthentication === 1 && d.SecurityLayer === 0) {
    throw new UsageError(
      'enable --security-layer rdp asks for two things that exclude each other: NLA authenticates through CredSSP, which runs inside TLS, and SecurityLayer rdp (0) turns TLS off',
      'use enable with --security-layer negotiate or tls, or --security-layer rdp together with disable',
    );
  }
  const weakening = d.UserAuthentication === 0 || d.SecurityLayer === 0;
  if (o.forSeconds !== undefined && !weakening) throw new UsageError('--for sets an expiry for a temporary weakening: use it with disable or --security-layer rdp');
  if ((o.mode === 'status' || o.mode === 'restore') && o.policy && !Object.keys(d).length) throw new UsageError('--policy applies when a value is changed');
  if (o.mode === 'restore' && Object.keys(d).length) throw new UsageError('--restore puts the recorded values back; it takes no other change');
}

// ---------------------------------------------------------------- PowerShell

const STATE_PS = `function Get-RdpSecurityState {
    # Local (RDP-Tcp) and Group Policy values, the expiry task, and whether a domain GPO may re-apply.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$TaskName)
    $names = @('UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel')
    $state = [ordered]@{
        local = Get-RdpRegistryValue -Path ${psQuote(RDP_TCP_KEY)} -Name $names
        policy = Get-RdpRegistryValue -Path ${psQuote(POLICY_KEY)} -Name ($names + @('fAllowSecProtocolNegotiation'))
        task = $null
        domainJoined = $null
    }
    if (Get-Command -Name 'Get-ScheduledTask' -ErrorAction SilentlyContinue) {
        $task = Get-ScheduledTask -TaskName $TaskName -TaskPath '\\rdpfix\\' -ErrorAction SilentlyContinue
        if ($null -ne $task) {
            $next = $null
            $info = Get-ScheduledTaskInfo -InputObject $task -ErrorAction SilentlyContinue
            if ($null -ne $info -and $null -ne $info.NextRunTime) { $next = $info.NextRunTime.ToUniversalTime().ToString('o') }
            $state.task = [ordered]@{ name = $TaskName; state = [string]$task.State; nextRun = $next }
        }
    }
    $computer = Get-CimInstance -ClassName Win32_ComputerSystem -ErrorAction SilentlyContinue
    if ($null -ne $computer) { $state.domainJoined = [bool]$computer.PartOfDomain }
    return $state
}

function Get-RdpMember {
    # Name/value pairs of a hashtable or of an object read back from JSON.
    [CmdletBinding()]
    param([AllowNull()]$InputObject)
    if ($null -eq $InputObject) { return @() }
    if ($InputObject -is [System.Collections.IDictionary]) {
        return @($InputObject.Keys | ForEach-Object -Process { [pscustomobject]@{ Name = [string]$_; Value = $InputObject[$_] } })
    }
    return @($InputObject.PSObject.Properties | ForEach-Object -Process { [pscustomobject]@{ Name = $_.Name; Value = $_.Value } })
}

function Set-RdpListenerValue {
    # One RDP-Tcp value through the WMI Win32_TSGeneralSetting method (which applies it to the
    # listener), or the registry when WMI refuses; $null removes the value. Returns how it was set.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Name, [AllowNull()]$Value)
    $methods = @{ UserAuthentication = @('SetUserAuthenticationRequired', 'UserAuthenticationRequired'); SecurityLayer = @('SetSecurityLayer', 'SecurityLayer'); MinEncryptionLevel = @('SetEncryptionLevel', 'MinEncryptionLevel') }
    $via = $null
    if ($PSCmdlet.ShouldProcess(('RDP-Tcp\\{0}' -f $Name), ('Set to {0}' -f $Value))) {
        if ($null -eq $Value) {
            Remove-ItemProperty -LiteralPath ${psQuote(RDP_TCP_KEY)} -Name $Name -Confirm:$false
            return 'registry'
        }
        try {
            $setting = Get-CimInstance -Namespace 'root\\cimv2\\TerminalServices' -ClassName 'Win32_TSGeneralSetting' -Filter "TerminalName='RDP-Tcp'" -ErrorAction Stop
            $call = Invoke-CimMethod -InputObject $setting -MethodName $methods[$Name][0] -Arguments @{ $methods[$Name][1] = [uint32]$Value } -Confirm:$false
            if ($call.ReturnValue -eq 0) { $via = 'wmi' }
            else { Write-Verbose -Message ('{0} returned {1}; writing the registry' -f $methods[$Name][0], $call.ReturnValue) }
        } catch {
            Write-Verbose -Message ('WMI failed ({0}); writing the registry' -f $_.Exception.Message)
        }
        if (-not $via) {
            $null = New-ItemProperty -LiteralPath ${psQuote(RDP_TCP_KEY)} -Name $Name -PropertyType DWord -Value ([int]$Value) -Force
            $via = 'registry'
        }
    }
    return $via
}

function Set-RdpPolicyValue {
    # One Group Policy value (only with --policy); $null removes it.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Name, [AllowNull()]$Value)
    if ($PSCmdlet.ShouldProcess(('Terminal Services policy\\{0}' -f $Name), ('Set to {0}' -f $Value))) {
        if ($null -eq $Value) { Remove-ItemProperty -LiteralPath ${psQuote(POLICY_KEY)} -Name $Name -Confirm:$false }
        else { $null = New-ItemProperty -LiteralPath ${psQuote(POLICY_KEY)} -Name $Name -PropertyType DWord -Value ([int]$Value) -Force }
        return 'policy'
    }
    return $null
}

function Remove-RdpExpiryTask {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$TaskName)
    if ($PSCmdlet.ShouldProcess($TaskName, 'Remove the scheduled re-enable task')) {
        Unregister-ScheduledTask -TaskName $TaskName -TaskPath '\\rdpfix\\' -Confirm:$false
        return $true
    }
    return $false
}

function Get-RdpRestoreOrder {
    # Leaving or entering TLS in an order WMI accepts (see rdpfix toggle-nla applyOrder).
    [CmdletBinding()]
    param([object[]]$Plan = @())
    $toTls = @($Plan | Where-Object -FilterScript { $_.name -eq 'SecurityLayer' -and $_.value -eq 2 }).Count -gt 0
    if ($toTls) { return @('MinEncryptionLevel', 'SecurityLayer', 'UserAuthentication') }
    return @('SecurityLayer', 'MinEncryptionLevel', 'UserAuthentication')
}

function Get-RdpValueRestoreLine {
    # The commands an administrator can paste on this server to put changed values back (each
    # change's "before": set again, or removed when it was not set), policy values first, and to
    # remove an expiry task this run registered.
    [CmdletBinding()]
    param([object[]]$Change = @(), [AllowEmptyString()][string]$TaskName = '')
    $keys = @{ local = ${psQuote(RDP_TCP_KEY)}; policy = ${psQuote(POLICY_KEY)} }
    $lines = @()
    foreach ($scope in @('policy', 'local')) {
        foreach ($item in @($Change | Where-Object -FilterScript { $_.scope -eq $scope })) {
            $key = ConvertTo-RdpLiteral -Value $keys[$scope]
            if ($null -eq $item.before) { $lines += ('Remove-ItemProperty -LiteralPath {0} -Name {1}' -f $key, (ConvertTo-RdpLiteral -Value $item.name)) }
            else { $lines += ('Set-ItemProperty -LiteralPath {0} -Name {1} -Value {2} -Type DWord' -f $key, (ConvertTo-RdpLiteral -Value $item.name), [int]$item.before) }
        }
    }
    if ($TaskName) { $lines += ('Unregister-ScheduledTask -TaskName {0} -TaskPath {1} -Confirm:$false' -f (ConvertTo-RdpLiteral -Value $TaskName), (ConvertTo-RdpLiteral -Value '\\rdpfix\\')) }
    return $lines
}

function Restore-RdpSecuritySetting {
    # Put recorded values back — only those still as rdpfix left them; anything changed since is
    # reported and kept. Removes the expiry task; marks the backup folder restored.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$Values,
        [AllowEmptyString()][string]$BackupPath = '',
        [Parameter(Mandatory = $true)][string]$TaskName,
        [switch]$RemoveTask
    )
    $state = Get-RdpSecurityState -TaskName $TaskName
    $result = [ordered]@{ step = 'toggle-nla'; mode = 'restore'; status = 'failed'; error = $null; before = $state; after = $null; restored = @(); skipped = @(); taskRemoved = $false; problems = @() }
    try {
        $plan = @()
        foreach ($scope in @('local', 'policy')) {
            foreach ($entry in @(Get-RdpMember -InputObject $Values.$scope)) {
                $now = $null
                if ($state[$scope].Contains($entry.Name)) { $now = [int]$state[$scope][$entry.Name] }
                $was = $entry.Value.before
                $left = $entry.Value.after
                if ($now -eq $was) { continue }
                if ($now -ne $left) { $result.skipped += ('{0} {1} is {2} now, not {3} as rdpfix left it: kept' -f $scope, $entry.Name, $now, $left); continue }
                $plan += [pscustomobject]@{ scope = $scope; name = $entry.Name; value = $was; from = $now }
            }
        }
        $dropTask = ($RemoveTask -and $null -ne $state.task)
        if ($plan.Count -eq 0 -and -not $dropTask) {
            $result.status = 'ok'
            $result.after = $state
            return $result
        }
        if ($PSCmdlet.ShouldProcess('RDP security settings', 'Restore the recorded values')) {
            foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'policy' })) {
                $null = Set-RdpPolicyValue -Name $item.name -Value $item.value
                $result.restored += [ordered]@{ scope = 'policy'; name = $item.name; before = $item.from; after = $item.value; via = 'policy' }
            }
            foreach ($name in @(Get-RdpRestoreOrder -Plan $plan)) {
                foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'local' -and $_.name -eq $name })) {
                    $via = Set-RdpListenerValue -Name $item.name -Value $item.value
                    $result.restored += [ordered]@{ scope = 'local'; name = $item.name; before = $item.from; after = $item.value; via = $via }
                }
            }
            if ($dropTask) { $result.taskRemoved = Remove-RdpExpiryTask -TaskName $TaskName }
            $result.restore = @(Get-RdpValueRestoreLine -Change $result.restored)
            if ($BackupPath -and (Test-Path -LiteralPath $BackupPath)) {
                Set-Content -LiteralPath (Join-Path -Path $BackupPath -ChildPath 'restored.json') -Value ((Get-Date).ToUniversalTime().ToString('o')) -Encoding ASCII
            }
            $after = Get-RdpSecurityState -TaskName $TaskName
            $result.after = $after
            foreach ($item in $plan) {
                $now = $null
                if ($after[$item.scope].Contains($item.name)) { $now = [int]$after[$item.scope][$item.name] }
                if ($now -ne $item.value) { $result.problems += ('{0} {1} reads {2}, expected {3}' -f $item.scope, $item.name, $now, $item.value) }
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

const EXPIRY_MAIN = `function Write-RdpExpiryLog {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Line)
    $folder = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\\log'
    if ($PSCmdlet.ShouldProcess($folder, 'Append to toggle-nla-expiry.log')) {
        $null = New-Item -ItemType Directory -Path $folder -Force
        Add-Content -LiteralPath (Join-Path -Path $folder -ChildPath 'toggle-nla-expiry.log') -Value $Line -Encoding UTF8
    }
}

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
try {
    $rdpfixResult = Restore-RdpSecuritySetting -Values ($rdpfixValuesJson | ConvertFrom-Json) -BackupPath $rdpfixBackupPath -TaskName ${psQuote(REENABLE_TASK)} -RemoveTask
    $rdpfixLine = '{0} rdpfix toggle-nla expiry: {1}; restored {2}; kept {3}; {4}' -f (Get-Date).ToString('o'), $rdpfixResult.status, (@($rdpfixResult.restored | ForEach-Object -Process { '{0} {1}={2}' -f $_.scope, $_.name, $_.after }) -join ', '), (@($rdpfixResult.skipped) -join '; '), $rdpfixResult.error
} catch {
    $rdpfixLine = '{0} rdpfix toggle-nla expiry failed: {1}' -f (Get-Date).ToString('o'), $_.Exception.Message
}
Write-RdpExpiryLog -Line $rdpfixLine`;

/** Drop full-line comments and indentation: the task's encoded command must stay short. */
export function minifyPs(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .join('\n');
}

/**
 * What the expiry task runs (as SYSTEM, unattended): the restore functions and a call that reads
 * $rdpfixValuesJson and $rdpfixBackupPath, which the target prepends at registration time as quoted
 * literals (ConvertTo-RdpLiteral, the same rule as psQuote), then encodes for -EncodedCommand.
 */
export function expiryTaskScript(): string {
  return minifyPs(psJoin(PS_REGISTRY, PS_LITERAL, STATE_PS, EXPIRY_MAIN));
}

const SET_PS = `function Register-RdpExpiryTask {
    # A one-time task, as SYSTEM, that puts the recorded values back when the time is up.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$TaskName,
        [Parameter(Mandatory = $true)][string]$TaskScript,
        [Parameter(Mandatory = $true)][string]$ValuesJson,
        [Parameter(Mandatory = $true)][string]$BackupPath,
        [Parameter(Mandatory = $true)][int]$Seconds
    )
    $due = (Get-Date).AddSeconds($Seconds)
    $script = '$rdpfixValuesJson = ' + (ConvertTo-RdpLiteral -Value $ValuesJson) + [Environment]::NewLine + '$rdpfixBackupPath = ' + (ConvertTo-RdpLiteral -Value $BackupPath) + [Environment]::NewLine + $TaskScript
    $encoded = [Convert]::ToBase64String([System.Text.Encoding]::Unicode.GetBytes($script))
    if ($PSCmdlet.ShouldProcess($TaskName, ('Register a one-time SYSTEM task at {0} that puts the settings back' -f $due))) {
        $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ' + $encoded)
        $trigger = New-ScheduledTaskTrigger -Once -At $due
        $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
        $settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Minutes 10)
        $null = Register-ScheduledTask -TaskName $TaskName -TaskPath '\\rdpfix\\' -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Description 'rdpfix: puts the RDP security settings back when a temporary weakening expires (toggle-nla --for)' -Force
        if ($null -eq (Get-ScheduledTask -TaskName $TaskName -TaskPath '\\rdpfix\\' -ErrorAction SilentlyContinue)) { throw 'the expiry task was not registered; nothing was changed' }
    }
    return [ordered]@{ name = $TaskName; due = $due.ToUniversalTime().ToString('o') }
}

function Get-RdpProjectedValue {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Projected, [Parameter(Mandatory = $true)][string]$Name)
    if ($Projected.policy.Contains($Name)) { return [int]$Projected.policy[$Name] }
    if ($Projected.local.Contains($Name)) { return [int]$Projected.local[$Name] }
    return $null
}

function Set-RdpSecuritySetting {
    # Change the values that differ, where they take effect: refuses when a Group Policy value would
    # override the change (unless -Policy) and when the result is an invalid combination. Backs up,
    # registers the expiry task first (so a weakening can never be left without one), changes,
    # reads back.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$Desired,
        [Parameter(Mandatory = $true)][string[]]$Order,
        [switch]$Policy,
        [int]$ExpirySeconds = 0,
        [switch]$RemoveTask,
        [Parameter(Mandatory = $true)][string]$TaskName,
        [Parameter(Mandatory = $true)][string]$TaskScript,
        [AllowEmptyString()][string]$BackupRoot = ''
    )
    $before = Get-RdpSecurityState -TaskName $TaskName
    $result = [ordered]@{ step = 'toggle-nla'; mode = 'set'; status = 'failed'; error = $null; refused = $null; warnings = @(); before = $before; after = $null; plan = @(); changed = @(); backup = $null; task = $null; taskRemoved = $false; problems = @() }
    try {
        $projected = [ordered]@{ local = [ordered]@{}; policy = [ordered]@{} }
        foreach ($scope in @('local', 'policy')) { foreach ($key in @($before[$scope].Keys)) { $projected[$scope][$key] = $before[$scope][$key] } }
        $plan = @()
        foreach ($name in $Order) {
            if (-not $Desired.Contains($name)) { continue }
            $want = [int]$Desired[$name]
            $policyHolds = $before.policy.Contains($name)
            if ($policyHolds -and [int]$before.policy[$name] -ne $want) {
                if (-not $Policy) {
                    $result.refused = 'policy-override'
                    throw ('Group Policy sets {0} = {1}, which overrides the local value: the change would not take effect. Pass --policy to change the policy value too' -f $name, $before.policy[$name])
                }
                $plan += [ordered]@{ scope = 'policy'; name = $name; before = [int]$before.policy[$name]; after = $want }
                $projected.policy[$name] = $want
            }
            $localNow = $null
            if ($before.local.Contains($name)) { $localNow = [int]$before.local[$name] }
            if ($localNow -ne $want -and (-not $policyHolds -or $Policy)) {
                $plan += [ordered]@{ scope = 'local'; name = $name; before = $localNow; after = $want }
                $projected.local[$name] = $want
            }
        }
        $layer = Get-RdpProjectedValue -Projected $projected -Name 'SecurityLayer'
        $level = Get-RdpProjectedValue -Projected $projected -Name 'MinEncryptionLevel'
        if ($layer -eq 2 -and $level -eq 1) {
            $result.refused = 'invalid-combination'
            throw 'SecurityLayer 2 (TLS) is not valid with MinEncryptionLevel 1 (Low): pass --min-encryption-level 2 (or higher) as well'
        }
        if ((Get-RdpProjectedValue -Projected $projected -Name 'UserAuthentication') -eq 1 -and $layer -eq 0) {
            $result.warnings += 'NLA is required but SecurityLayer is RDP security: CredSSP needs TLS'
        }
        $result.plan = $plan
        $dropTask = ($RemoveTask -and $null -ne $before.task)
        if ($plan.Count -eq 0 -and -not $dropTask) {
            $result.status = 'ok'
            $result.after = $before
            return $result
        }
        if ($PSCmdlet.ShouldProcess('RDP security settings', ('Back up, then set {0}' -f (@($plan | ForEach-Object -Process { '{0} {1}={2}' -f $_.scope, $_.name, $_.after }) -join ', ')))) {
            $folder = New-RdpBackupFolder -Root $BackupRoot -Step 'toggle-nla'
            $result.backup = $folder
            $files = @((Join-Path -Path $folder -ChildPath 'rdp-tcp.reg'), (Join-Path -Path $folder -ChildPath 'values.json'))
            $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', ${psQuote(RDP_TCP_KEY.replace(':', ''))}, $files[0], '/y')
            if (Test-Path -LiteralPath ${psQuote(POLICY_KEY)}) {
                $files += Join-Path -Path $folder -ChildPath 'policy.reg'
                $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', ${psQuote(POLICY_KEY.replace(':', ''))}, $files[2], '/y')
            }
            $values = [ordered]@{ local = [ordered]@{}; policy = [ordered]@{} }
            foreach ($item in $plan) { $values[$item.scope][$item.name] = [ordered]@{ before = $item.before; after = $item.after } }
            $valuesJson = $values | ConvertTo-Json -Compress -Depth 4
            Set-Content -LiteralPath $files[1] -Value $valuesJson -Encoding ASCII
            Assert-RdpBackupFile -Path $files
            if ($ExpirySeconds -gt 0 -and $plan.Count -gt 0) {
                $result.task = Register-RdpExpiryTask -TaskName $TaskName -TaskScript $TaskScript -ValuesJson $valuesJson -BackupPath $folder -Seconds $ExpirySeconds
            }
            if ($dropTask) { $result.taskRemoved = Remove-RdpExpiryTask -TaskName $TaskName }
            foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'policy' })) {
                $null = Set-RdpPolicyValue -Name $item.name -Value $item.after
                $result.changed += [ordered]@{ scope = 'policy'; name = $item.name; before = $item.before; after = $item.after; via = 'policy' }
            }
            foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'local' })) {
                $via = Set-RdpListenerValue -Name $item.name -Value $item.after
                $result.changed += [ordered]@{ scope = 'local'; name = $item.name; before = $item.before; after = $item.after; via = $via }
            }
            $registered = ''
            if ($null -ne $result.task) { $registered = $TaskName }
            $result.restore = @(Get-RdpValueRestoreLine -Change $result.changed -TaskName $registered)
            $after = Get-RdpSecurityState -TaskName $TaskName
            $result.after = $after
            foreach ($item in $plan) {
                $now = $null
                if ($after[$item.scope].Contains($item.name)) { $now = [int]$after[$item.scope][$item.name] }
                if ($now -ne $item.after) { $result.problems += ('{0} {1} reads {2}, expected {3}' -f $item.scope, $item.name, $now, $item.after) }
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
}

function Restore-RdpLatestSetting {
    # --restore: the newest toggle-nla backup on this machine that was not restored yet.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([AllowEmptyString()][string]$BackupRoot = '', [Parameter(Mandatory = $true)][string]$TaskName)
    if (-not $BackupRoot) { $BackupRoot = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\\backup' }
    $candidates = @(Get-ChildItem -LiteralPath $BackupRoot -Directory -Filter '*-toggle-nla' -ErrorAction SilentlyContinue | Sort-Object -Property Name -Descending |
        Where-Object -FilterScript { (Test-Path -LiteralPath (Join-Path -Path $_.FullName -ChildPath 'values.json')) -and -not (Test-Path -LiteralPath (Join-Path -Path $_.FullName -ChildPath 'restored.json')) })
    if ($candidates.Count -eq 0) {
        $state = Get-RdpSecurityState -TaskName $TaskName
        return [ordered]@{ step = 'toggle-nla'; mode = 'restore'; status = 'ok'; error = $null; note = ('no toggle-nla backup left to restore under {0}' -f $BackupRoot); before = $state; after = $state; restoredFrom = $null }
    }
    $folder = $candidates[0].FullName
    $values = Get-Content -LiteralPath (Join-Path -Path $folder -ChildPath 'values.json') -Raw | ConvertFrom-Json
    $restored = Restore-RdpSecuritySetting -Values $values -BackupPath $folder -TaskName $TaskName -RemoveTask
    $restored['restoredFrom'] = $folder
    return $restored
}`;

function functions(): string {
  return psJoin(PS_REGISTRY, PS_NATIVE, PS_BACKUP, STATE_PS, SET_PS);
}

/** The generated script for one toggle-nla run. */
export function buildNlaScript(o: NlaOptions, dryRun: boolean): string {
  const d = desiredValues(o);
  const base = { TaskName: REENABLE_TASK, BackupRoot: o.backupRoot ?? '', DryRun: dryRun };
  if (o.mode === 'status' && !Object.keys(d).length) {
    return buildScript({
      name: 'toggle-nla',
      summary: 'show NLA and security-layer settings, their Group Policy overrides and the expiry task (read-only)',
      params: { TaskName: REENABLE_TASK },
      body: psJoin(PS_REGISTRY, PS_LITERAL, STATE_PS, "$Result = [ordered]@{ step = 'toggle-nla'; mode = 'status'; status = 'ok'; before = (Get-RdpSecurityState -TaskName $P.TaskName); after = $null }"),
    });
  }
  if (o.mode === 'restore') {
    return buildScript({
      name: 'toggle-nla',
      summary: 'put back the RDP security values recorded by the newest toggle-nla change on this machine',
      params: base,
      body: psJoin(functions(), '$Result = Restore-RdpLatestSetting -BackupRoot $P.BackupRoot -TaskName $P.TaskName -WhatIf:$P.DryRun'),
    });
  }
  const order = applyOrder(d).filter((n) => d[n] !== undefined);
  const params = {
    Desired: d as Record<string, number>,
    Order: order,
    Policy: !!o.policy,
    ExpirySeconds: o.forSeconds ?? 0,
    RemoveTask: o.mode === 'enable',
    ...base,
    TaskScript: expiryTaskScript(),
  };
  const what = Object.entries(d).map(([k, v]) => `${k}=${v}`).join(', ');
  return buildScript({
    name: 'toggle-nla',
    summary: `set ${what}${o.policy ? ' (and the Group Policy values)' : ''}${o.forSeconds ? `, put back after ${o.forSeconds} s` : ''}`,
    params,
    body: psJoin(
      functions(),
      '$Result = Set-RdpSecuritySetting -Desired $P.Desired -Order $P.Order -Policy:$P.Policy -ExpirySeconds $P.ExpirySeconds -RemoveTask:$P.RemoveTask -TaskName $P.TaskName -TaskScript $P.TaskScript -BackupRoot $P.BackupRoot -WhatIf:$P.DryRun',
    ),
  });
}

/** Recorded values → the undo script (explicit values; no dependence on files on the target). */
export function buildNlaUndoScript(changes: ValueChange[], backup: string | null): string {
  const values: Record<'local' | 'policy', Record<string, { before: number | null; after: number | null }>> = { local: {}, policy: {} };
  for (const c of changes) values[c.scope][c.name] = { before: c.before, after: c.after };
  return buildScript({
    name: 'toggle-nla-undo',
    summary: 'put back the RDP security values recorded before a toggle-nla change',
    params: { Values: values, BackupPath: backup ?? '', TaskName: REENABLE_TASK, DryRun: false },
    body: psJoin(functions(), '$Result = Restore-RdpSecuritySetting -Values $P.Values -BackupPath $P.BackupPath -TaskName $P.TaskName -RemoveTask -WhatIf:$P.DryRun'),
  });
}

// ---------------------------------------------------------------- interpretation

function validChanges(v: unknown): ValueChange[] | null {
  const out: ValueChange[] = [];
  for (const c of asArray<Partial<ValueChange>>(v)) {
    const ok = (x: unknown) => x === null || (typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 4);
    if (!c || (c.scope !== 'local' && c.scope !== 'policy') || !NAMES.includes(c.name as SettingName) || !ok(c.before ?? null) || !ok(c.after ?? null)) return null;
    out.push({ scope: c.scope, name: c.name as SettingName, before: c.before ?? null, after: c.after ?? null, ...(c.via ? { via: c.via } : {}) });
  }
  return out;
}

const label = (n: string, v: number | null) =>
  v === null ? `${n} not set` : n === 'UserAuthentication' ? `NLA ${v === 1 ? 'required' : 'off'}` : n === 'SecurityLayer' ? `SecurityLayer ${['RDP', 'Negotiate', 'TLS'][v] ?? v} (${v})` : `${n} ${v}`;

function describe(e: EffectiveSecurity | null): string {
  if (!e) return 'unknown';
  return (['UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel'] as const)
    .map((n) => `${label(n, e[n].value)}${e[n].source === 'policy' ? ' [Group Policy]' : ''}`)
    .join(', ');
}

export function interpretNla(raw: NlaRaw, ctx: StepContext, o: NlaOptions): NlaReport {
  const before = raw.before ? effectiveSecurity(raw.before.local, raw.before.policy) : null;
  const after = raw.after ? effectiveSecurity(raw.after.local, raw.after.policy) : null;
  const changes = asArray<ValueChange>(raw.mode === 'restore' ? raw.restored : raw.changed);
  const plan = asArray<ValueChange>(raw.plan);
  const r: NlaReport = {
    ...baseReport('toggle-nla', ctx),
    mode: o.mode,
    before: raw.before ?? null,
    after: raw.after ?? null,
    backup: raw.backup ?? raw.restoredFrom ?? null,
    effectiveBefore: before,
    effectiveAfter: after,
    changes,
    task: raw.task ?? null,
    refused: raw.refused ?? null,
  };
  r.status = (['ok', 'changed', 'would-change', 'failed'].includes(raw.status) ? raw.status : 'failed') as NlaReport['status'];
  if (raw.error) r.error = raw.error;
  r.warnings.push(...asArray<string>(raw.warnings), ...asArray<string>(raw.skipped));
  const problems = asArray<string>(raw.problems);

  // Verify in TypeScript too: every requested value must now be in force (policy wins).
  const d = desiredValues(o);
  if (r.status === 'changed' && raw.mode !== 'restore' && after) {
    for (const [n, v] of Object.entries(d) as Array<[SettingName, number]>) {
      if (after[n].value !== v) problems.push(`${n} in force is ${after[n].value ?? 'not set'} (${after[n].source}), not ${v}`);
    }
    if (problems.length) r.status = 'failed';
  }

  const weakening = (c: { name: string; after: number | null }) => (c.name === 'UserAuthentication' && c.after === 0) || (c.name === 'SecurityLayer' && c.after === 0);
  const weakens = [...changes, ...plan].some(weakening);
  if (weakens) {
    r.warnings.push('disabling NLA (or using RDP security) is a security downgrade: credentials are asked after the session starts, and EDR rules flag it as an attacker technique');
    if (!o.forSeconds && !r.task) r.warnings.push(`no expiry is set: re-enable with ${nextCommand('toggle-nla', ['enable'], ctx)}, or next time pass --for 2h`);
  }
  if ([...changes, ...plan].some((c) => c.scope === 'policy')) {
    r.warnings.push('a Group Policy value was changed in the registry: a domain or local GPO re-applies its own value at the next refresh (about every 90 minutes); change the GPO itself to make it last');
  }

  const task = r.task ? `; a scheduled task (${r.task.name}, SYSTEM) puts it back at ${r.task.due}` : '';
  switch (r.status) {
    case 'ok':
      r.summary = raw.mode === 'status' ? `in force: ${describe(before)}` : raw.note ?? `already in force: ${describe(before)}`;
      break;
    case 'would-change':
      r.summary = `would set ${plan.map((c) => `${c.scope === 'policy' ? 'policy ' : ''}${label(c.name, c.after)}`).join(', ') || 'the recorded values back'}${o.forSeconds ? ` and register a task that puts it back in ${o.forSeconds} s` : ''}${o.mode === 'enable' && raw.before?.task ? '; remove the expiry task' : ''} (now: ${describe(before)})`;
      break;
    case 'changed':
      r.summary = `${raw.mode === 'restore' ? 'restored' : 'now in force'}: ${describe(after)}${task}${raw.taskRemoved ? '; the expiry task was removed' : ''}`;
      break;
    default:
      r.summary = raw.error ?? (problems.join('; ') || 'the change failed');
  }
  r.evidence.push(`before: ${describe(before)}`);
  if (after && r.status === 'changed') r.evidence.push(`after: ${describe(after)}`);
  for (const c of changes) r.evidence.push(`${c.scope} ${c.name}: ${c.before ?? 'not set'} → ${c.after ?? 'not set'}${c.via ? ` (${c.via})` : ''}`);
  if (raw.before?.task) r.evidence.push(`expiry task ${raw.before.task.name}: ${raw.before.task.state ?? ''}${raw.before.task.nextRun ? `, runs ${raw.before.task.nextRun}` : ''}`);
  if (problems.length && r.status === 'failed') r.evidence.push(...problems);
  if (raw.refused === 'policy-override') r.next.push(nextCommand('toggle-nla', [...cliArgs(o), '--policy'], ctx));
  if (r.status === 'changed' && weakens) {
    r.next.push(nextCommand('toggle-nla', ['enable'], ctx));
    r.notes.push(`the command under Next turns NLA back on${r.task ? ` before the expiry task does (${r.task.due})` : ''}`);
  }
  if (raw.before?.domainJoined && [...changes, ...plan].some((c) => c.scope === 'policy')) r.warnings.push('this machine is domain-joined: the domain GPO wins at the next refresh');
  return r;
}

function cliArgs(o: NlaOptions): string[] {
  const a: string[] = [];
  if (o.mode === 'enable' || o.mode === 'disable') a.push(o.mode);
  if (o.securityLayer) a.push('--security-layer', o.securityLayer);
  if (o.minEncryptionLevel !== undefined) a.push('--min-encryption-level', String(o.minEncryptionLevel));
  return a;
}

/** Show or change NLA / the security layer on a target; journals changes with their undo. */
export async function toggleNla(o: NlaOptions, ctx: StepContext): Promise<NlaReport> {
  validateOptions(o);
  const raw = await runStep<NlaRaw>(ctx, buildNlaScript(o, ctx.dryRun));
  const report = interpretNla(raw, ctx, o);
  if (ctx.dryRun || report.status === 'would-change') return report;
  if (raw.mode === 'restore') {
    // --restore undid a journaled change on the target itself: mark those entries undone.
    const from = raw.restoredFrom ?? null;
    if (report.status === 'changed' || report.status === 'ok') {
      const target = describeTarget(ctx.target);
      for (const e of await list(ctx.journal)) {
        if (e.script === 'toggle-nla' && !e.undone && e.target === target && from && e.backup === from) {
          await markUndone(e.id, { time: new Date().toISOString(), status: report.status, detail: 'restored with toggle-nla --restore' }, ctx.journal);
          report.journal.push(e.id);
        }
      }
    }
    return report;
  }
  const changes = validChanges(raw.changed);
  const any = asArray(raw.changed).length > 0 || raw.task || raw.taskRemoved;
  if (!any) return report;
  const backup = targetPath(raw.backup);
  const entries = await journalChanges(ctx, 'toggle-nla', [
    {
      summary: `${(changes ?? []).map((c) => `${c.scope} ${c.name} ${c.before ?? 'unset'}→${c.after ?? 'unset'}`).join(', ') || 'expiry task'}${raw.task ? ` (expires ${raw.task.due})` : ''}${raw.taskRemoved ? ' (expiry task removed)' : ''}`,
      before: { values: (changes ?? []).map((c) => ({ scope: c.scope, name: c.name, value: c.before })), task: raw.before?.task ?? null },
      after: { values: (changes ?? []).map((c) => ({ scope: c.scope, name: c.name, value: c.after })), task: raw.task ?? null },
      backup,
      undo: changes
        ? psUndo(ctx, buildNlaUndoScript(changes, backup))
        : { kind: 'none', reason: `the target reported values rdpfix will not embed in a script; run toggle-nla --restore on ${describeTarget(ctx.target)}` },
    },
  ]);
  attachJournal(report, entries, ctx);
  return report;
}

// ---------------------------------------------------------------- examples

export function psExamples(): PsExample[] {
  return [
    { label: 'status', script: buildNlaScript({ mode: 'status' }, false) },
    { label: 'enable', script: buildNlaScript({ mode: 'enable' }, false) },
    { label: 'disable-for-2h', script: buildNlaScript({ mode: 'disable', forSeconds: 7200 }, false) },
    { label: 'disable-dry-run', script: buildNlaScript({ mode: 'disable', forSeconds: 7200 }, true) },
    { label: 'disable-policy', script: buildNlaScript({ mode: 'disable', policy: true }, false) },
    { label: 'security-layer-tls', script: buildNlaScript({ mode: 'set', securityLayer: 'tls', minEncryptionLevel: 2 }, false) },
    { label: 'restore', script: buildNlaScript({ mode: 'restore' }, false) },
    { label: 'restore-dry-run', script: buildNlaScript({ mode: 'restore' }, true) },
    {
      label: 'undo',
      script: buildNlaUndoScript(
        [
          { scope: 'local', name: 'UserAuthentication', before: 1, after: 0 },
          { scope: 'policy', name: 'UserAuthentication', before: 1, after: 0 },
        ],
        'C:\\ProgramData\\rdpfix\\backup\\20250101-120000-000-toggle-nla',
      ),
    },
    { label: 'expiry-task', script: expiryTaskScript() },
  ];
}

// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'toggle-nla'))
    .command('$0 [mode]', 'show or change NLA', (y) =>
      y.positional('mode', { choices: ['status', 'enable', 'disable'] as const, describe: 'status (default; with --security-layer: leave NLA as it is), enable or disable' }),
    )
    .usage('$0 [status|enable|disable] [--security-layer rdp|negotiate|tls] [--for 2h] [--policy] [--target CHANNEL]\n$0 --restore [--target CHANNEL]\n\nShow or change Network Level Authentication and the RDP security layer, honouring Group Policy overrides.')
    .option('security-layer', { choices: ['rdp', 'negotiate', 'tls'] as const, describe: 'SecurityLayer: rdp (0, standard RDP security), negotiate (1, the default), tls (2)' })
    .option('min-encryption-level', { type: 'string', describe: 'MinEncryptionLevel 1-4 (1 Low, 2 Client compatible, 3 High, 4 FIPS); TLS needs 2 or higher' })
    .option('for', { type: 'string', describe: 'with disable or --security-layer rdp: put the previous values back after this long (e.g. 30m, 2h, 1d) via a scheduled task on the target' })
    .option('policy', { type: 'boolean', default: false, describe: 'when Group Policy overrides a value, change the policy value too (a GPO may re-apply it at the next refresh)' })
    .option('restore', { type: 'boolean', default: false, describe: 'put back the values recorded by the newest toggle-nla change on the target' })
    .option('backup-dir', { type: 'string', describe: 'backup folder on the target (default C:\\ProgramData\\rdpfix\\backup)' })
    .example('$0 status --target azure://SUB/RG/VM', 'what is in force, and where it comes from')
    .example('$0 disable --for 2h --target winrm://vm1', 'let a client without CredSSP in for two hours; NLA comes back by itself')
    .example('$0 --security-layer negotiate --dry-run', 'what would change')
    .example('$0 disable --for 2h --emit > nla-off.ps1', 'the script to paste on the server')
    .example('$0 --restore --target winrm://vm1', 'put the recorded values back')
    .epilog('Undo: npx tsx scripts/undo.ts --last --yes  (or toggle-nla --restore on the target)')
    .parseAsync();
  const flags = serverFlags(args);
  const mode = (args.mode as 'status' | 'enable' | 'disable' | undefined) ?? 'status';
  if (args.restore && args.mode) throw new UsageError('--restore takes no mode');
  const opts: NlaOptions = {
    mode: args.restore ? 'restore' : mode === 'status' && (args['security-layer'] || args['min-encryption-level']) ? 'set' : mode,
    ...(args['security-layer'] ? { securityLayer: args['security-layer'] as Layer } : {}),
    ...(args['min-encryption-level'] !== undefined ? { minEncryptionLevel: validateInt(args['min-encryption-level'], '--min-encryption-level', 1, 4) } : {}),
    ...(args.for !== undefined ? { forSeconds: validateDuration(args.for, '--for') } : {}),
    policy: args.policy,
    ...(args['backup-dir'] !== undefined ? { backupRoot: backupRoot(args['backup-dir']) } : {}),
  };
  validateOptions(opts);
  return serverMain(flags, {
    title: opts.mode === 'status' ? 'reading NLA settings' : 'changing NLA settings',
    emit: (dry) => buildNlaScript(opts, dry),
    execute: (ctx) => toggleNla(opts, ctx),
  });
}


if (isMain(import.meta.url)) await runCli(main);
