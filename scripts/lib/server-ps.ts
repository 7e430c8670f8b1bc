// Shared server-side facts and PowerShell building blocks for inspect-server, restart-termserv,
// clear-machinekeys and toggle-nla: the registry paths, SIDs and per-build key ACLs (one place,
// with their sources in ../shared/REFERENCE.md), and the PowerShell functions every generated
// script uses (reading registry values so "not set" differs from 0, reading security descriptors
// that Get-Acl refuses, running icacls/reg without PowerShell 5.1's stderr trap, creating the
// timestamped backup folder, summarising events and certificates compactly).
//
// Every constant that reaches PowerShell text goes through psQuote. The functions are plain text
// with no user input; user values only ever arrive through $P (lib/ps.ts buildScript).
import { createHash } from 'node:crypto';
import { psQuote } from './ps.ts';
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
 * The ACEs the RDP key container carries on a build (REFERENCE.md, measured by RSL): SYSTEM Full
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

const q = psQuote;

/** Read registry values; absent values are left out so "not set" differs from 0. */
export const PS_REGISTRY = `function Get-RdpRegistryValue {
    # The values present under one key, by name. A value that is not set is left out, so "not set"
    # and 0 stay different (a policy value overrides only when it is actually there).
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string[]]$Name
    )
    $values = [ordered]@{}
    if (-not (Test-Path -LiteralPath $Path)) { return $values }
    $key = Get-Item -LiteralPath $Path
    foreach ($valueName in $Name) {
        $value = $key.GetValue($valueName, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        if ($null -ne $value) { $values[$valueName] = $value }
    }
    return $values
}`;

/** Security descriptors: read even where Get-Acl fails; write only the DACL. */
export const PS_SDDL = `function Get-RdpPathSddl {
    # Owner, group and DACL as SDDL, or $null. Uses .NET directly: Get-Acl needs to list the parent,
    # which a hardened MachineKeys folder refuses even when the file's own descriptor is readable.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [switch]$Directory
    )
    $sections = [System.Security.AccessControl.AccessControlSections]'Owner, Group, Access'
    try {
        if ($Directory) { $descriptor = [System.IO.Directory]::GetAccessControl($Path, $sections) }
        else { $descriptor = [System.IO.File]::GetAccessControl($Path, $sections) }
        return $descriptor.GetSecurityDescriptorSddlForm($sections)
    } catch {
        Write-Verbose -Message ('cannot read the security descriptor of {0}: {1}' -f $Path, $_.Exception.Message)
        return $null
    }
}

function Set-RdpPathSddl {
    # Replace only the DACL (and its protection flag) from an SDDL string; owner and SACL are kept.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Sddl,
        [switch]$Directory
    )
    $sections = [System.Security.AccessControl.AccessControlSections]::Access
    if ($PSCmdlet.ShouldProcess($Path, 'Set the access control list')) {
        if ($Directory) {
            $descriptor = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
            $descriptor.SetSecurityDescriptorSddlForm($Sddl, $sections)
            [System.IO.Directory]::SetAccessControl($Path, $descriptor)
        } else {
            $descriptor = New-Object -TypeName System.Security.AccessControl.FileSecurity
            $descriptor.SetSecurityDescriptorSddlForm($Sddl, $sections)
            [System.IO.File]::SetAccessControl($Path, $descriptor)
        }
    }
}

function Test-RdpSddlAccess {
    # Does the descriptor grant every bit of Mask to one of Sid (grants add up across entries) with
    # no deny overlapping it? The same rule as rdpfix's lib/sddl.ts checkAccess, which re-checks the
    # descriptors this script returns.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][AllowEmptyString()][string]$Sddl,
        [Parameter(Mandatory = $true)][string[]]$Sid,
        [Parameter(Mandatory = $true)][int]$Mask
    )
    if (-not $Sddl) { return $false }
    $raw = New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl
    if ($null -eq $raw.DiscretionaryAcl) { return $true }
    $allowed = 0
    foreach ($entry in $raw.DiscretionaryAcl) {
        if ($entry -isnot [System.Security.AccessControl.KnownAce]) { continue }
        if ($Sid -notcontains $entry.SecurityIdentifier.Value) { continue }
        $type = $entry.AceType.ToString()
        if ($type -like '*Denied*' -and ($entry.AccessMask -band $Mask)) { return $false }
        if ($type -eq 'AccessAllowed') { $allowed = $allowed -bor $entry.AccessMask }
    }
    return (($allowed -band $Mask) -eq $Mask)
}`;

/** icacls / reg without Windows PowerShell 5.1 turning stderr text into a terminating error. */
export const PS_NATIVE = `function Invoke-RdpNative {
    # Runs a native program with an argument array and returns its output lines; a non-zero exit
    # code is an error naming the program and the last lines it printed.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][ValidateSet('icacls.exe', 'reg.exe', 'robocopy.exe')][string]$FilePath,
        [Parameter(Mandatory = $true)][string[]]$ArgumentList,
        [int]$MaxExitCode = 0
    )
    $ErrorActionPreference = 'Continue'
    $output = @(& $FilePath @ArgumentList 2>&1 | ForEach-Object -Process { [string]$_ })
    if ($LASTEXITCODE -gt $MaxExitCode -or $LASTEXITCODE -lt 0) {
        throw ('{0} {1} failed with exit code {2}: {3}' -f $FilePath, $ArgumentList[0], $LASTEXITCODE, (($output | Select-Object -Last 3) -join ' '))
    }
    return $output
}`;

/** The psQuote rule in PowerShell, for text a script builds at run time (restore commands, the expiry task). */
export const PS_LITERAL = `function ConvertTo-RdpLiteral {
    # A PowerShell single-quoted literal: every one of the five single-quote characters doubled (the
    # rule of rdpfix's psQuote), for the restore commands a run prints and the expiry task.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Value)
    return "'" + ($Value -replace "['\\u2018\\u2019\\u201A\\u201B]", '$0$0') + "'"
}`;

/** The timestamped backup folder on the target (with PS_LITERAL, which every backing-up step uses). */
export const PS_BACKUP = `${PS_LITERAL}

function New-RdpBackupFolder {
    # C:\\ProgramData\\rdpfix\\backup\\<yyyyMMdd-HHmmss-fff>-<step>, created before anything changes.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [AllowEmptyString()][string]$Root = '',
        [Parameter(Mandatory = $true)][string]$Step
    )
    if (-not $Root) { $Root = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\\backup' }
    $path = Join-Path -Path $Root -ChildPath ('{0}-{1}' -f (Get-Date).ToString('yyyyMMdd-HHmmss-fff'), $Step)
    if ($PSCmdlet.ShouldProcess($path, 'Create the backup folder')) {
        $null = New-Item -ItemType Directory -Path $path -Force
    }
    return $path
}

function Copy-RdpFile {
    # Copy one file into a folder; when its ACL refuses even this account a read (the broken-key
    # case), fall back to robocopy /B, which reads with the backup privilege.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Source,
        [Parameter(Mandatory = $true)][string]$Destination
    )
    if ($PSCmdlet.ShouldProcess($Source, ('Copy to {0}' -f $Destination))) {
        try {
            Copy-Item -LiteralPath $Source -Destination $Destination -Force
        } catch {
            Write-Verbose -Message ('Copy-Item failed ({0}); retrying with robocopy /B' -f $_.Exception.Message)
            $null = Invoke-RdpNative -FilePath 'robocopy.exe' -ArgumentList @((Split-Path -Path $Source -Parent), $Destination, (Split-Path -Path $Source -Leaf), '/B', '/COPY:DAT', '/R:0', '/W:0', '/NP', '/NJH', '/NJS') -MaxExitCode 7
        }
    }
}

function Assert-RdpBackupFile {
    # Refuse to continue when a backup file is missing or empty: nothing may change without it.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string[]]$Path)
    foreach ($file in $Path) {
        if (-not (Test-Path -LiteralPath $file -PathType Leaf) -or (Get-Item -LiteralPath $file).Length -eq 0) {
            throw ('backup failed: {0} was not written; nothing was changed' -f $file)
        }
    }
}`;

/**
 * The WTS API, compiled once per session by Add-Type: WTSEnumerateSessions and
 * WTSQuerySessionInformation give session ids, language-neutral connect states and client names.
 * `quser`/`qwinsta` print localised, column-aligned text (and quser exits 1 when nobody is signed
 * in); Win32_LogonSession keeps stale logons and has no session id, state or client. The call runs
 * on a task with a timeout, because a hung TermService can make it wait.
 */
export const WTS_CSHARP = String.raw`using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
public class RdpfixWtsSession
{
    public int Id;
    public string Station;
    public string State;
    public string User;
    public string Client;
}
public static class RdpfixWts
{
    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    private struct SessionInfo
    {
        public int SessionId;
        public string WinStationName;
        public int State;
    }
    [DllImport("wtsapi32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
    private static extern bool WTSEnumerateSessionsW(IntPtr server, int reserved, int version, out IntPtr sessions, out int count);
    [DllImport("wtsapi32.dll", CharSet = CharSet.Unicode, SetLastError = true)]
    private static extern bool WTSQuerySessionInformationW(IntPtr server, int sessionId, int infoClass, out IntPtr buffer, out int bytes);
    [DllImport("wtsapi32.dll")]
    private static extern void WTSFreeMemory(IntPtr memory);
    private static readonly string[] States = { "Active", "Connected", "ConnectQuery", "Shadow", "Disconnected", "Idle", "Listen", "Reset", "Down", "Init" };
    private static string Query(int id, int infoClass)
    {
        IntPtr buffer;
        int bytes;
        if (!WTSQuerySessionInformationW(IntPtr.Zero, id, infoClass, out buffer, out bytes)) return null;
        try { string text = Marshal.PtrToStringUni(buffer); return string.IsNullOrEmpty(text) ? null : text; }
        finally { WTSFreeMemory(buffer); }
    }
    private static List<RdpfixWtsSession> Enumerate()
    {
        IntPtr info;
        int count;
        if (!WTSEnumerateSessionsW(IntPtr.Zero, 0, 1, out info, out count)) throw new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error());
        List<RdpfixWtsSession> list = new List<RdpfixWtsSession>();
        try
        {
            int size = Marshal.SizeOf(typeof(SessionInfo));
            for (int i = 0; i < count; i++)
            {
                SessionInfo s = (SessionInfo)Marshal.PtrToStructure(new IntPtr(info.ToInt64() + (long)i * size), typeof(SessionInfo));
                string user = Query(s.SessionId, 5);
                string domain = Query(s.SessionId, 7);
                RdpfixWtsSession item = new RdpfixWtsSession();
                item.Id = s.SessionId;
                item.Station = s.WinStationName;
                item.State = (s.State >= 0 && s.State < States.Length) ? States[s.State] : s.State.ToString();
                item.User = (user == null) ? null : ((domain == null) ? user : domain + @"\" + user);
                item.Client = Query(s.SessionId, 10);
                list.Add(item);
            }
        }
        finally { WTSFreeMemory(info); }
        return list;
    }
    public static RdpfixWtsSession[] List(int timeoutMilliseconds)
    {
        Task<List<RdpfixWtsSession>> task = Task.Run(() => Enumerate());
        if (!task.Wait(timeoutMilliseconds)) throw new TimeoutException("the session list did not come back within " + (timeoutMilliseconds / 1000) + " s (TermService may be hung)");
        return task.Result.ToArray();
    }
}`;

/** At most this many sessions are listed by name (a busy RD Session Host has hundreds). */
export const MAX_SESSIONS_LISTED = 8;

/** The signed-in sessions, and the session this script runs in. */
export const PS_SESSIONS = `function Get-RdpSession {
    # Sessions with a signed-in user (id, user, state, client), from the WTS API; the caller's own
    # session id (0 over WinRM, SSH and Run Command). Never throws: an error is reported instead.
    [CmdletBinding()]
    param([int]$TimeoutSeconds = 15)
    $info = [ordered]@{ own = [System.Diagnostics.Process]::GetCurrentProcess().SessionId; count = 0; list = @(); error = $null }
    try {
        if ($null -eq ('RdpfixWts' -as [type])) {
            $source = @(
${WTS_CSHARP.split('\n').map((l) => `                ${psQuote(l)}`).join(',\n')}
            ) -join [Environment]::NewLine
            Add-Type -TypeDefinition $source -Language CSharp
        }
        $signedIn = @([RdpfixWts]::List($TimeoutSeconds * 1000) | Where-Object -FilterScript { $_.User })
        $info.count = $signedIn.Count
        $info.list = @($signedIn | Select-Object -First ${MAX_SESSIONS_LISTED} | ForEach-Object -Process { [ordered]@{ id = $_.Id; user = $_.User; state = $_.State; client = $_.Client; station = $_.Station } })
    } catch {
        $failure = $_.Exception
        while ($null -ne $failure.InnerException) { $failure = $failure.InnerException }
        $info.error = $failure.Message
    }
    return $info
}

function Test-RdpSessionBlock {
    # The rule rdpfix's restart-termserv sessionImpact re-checks: a restart of a running TermService
    # disconnects every session; any signed-in session other than the caller's, or a list that could
    # not be read, needs -DisconnectSessions. Returns the reason to refuse, or $null.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Sessions, [bool]$Running = $true)
    if (-not $Running) { return $null }
    if ($Sessions.error) { return ('the signed-in sessions could not be listed ({0}); a restart may disconnect users. Pass --force to restart anyway' -f $Sessions.error) }
    $others = @($Sessions.list | Where-Object -FilterScript { $_.id -ne $Sessions.own })
    $hidden = [Math]::Max(0, $Sessions.count - @($Sessions.list).Count)
    if ($others.Count -eq 0 -and $hidden -eq 0) { return $null }
    $names = @($others | ForEach-Object -Process { '{0} (session {1}, {2}{3})' -f $_.user, $_.id, $_.state, $(if ($_.client) { ', from ' + $_.client } else { '' }) })
    if ($hidden -gt 0) { $names += ('{0} more' -f $hidden) }
    return ('restarting TermService disconnects {0} session(s): {1}. Pass --force to restart anyway' -f ($others.Count + $hidden), ($names -join '; '))
}`;

/** Services, listener and certificate facts in the shapes Windows returns them. */
export const PS_FACTS = `function Get-RdpServiceSnapshot {
    # Get-Service | Select-Object Name,Status,StartType (Windows PowerShell 5.1 writes the enums
    # as numbers in JSON: Running = 4, Stopped = 1; Automatic = 2, Manual = 3, Disabled = 4).
    [CmdletBinding()]
    param([string[]]$Name = @('TermService', 'UmRdpService', 'SessionEnv'))
    return @(Get-Service -Name $Name -ErrorAction SilentlyContinue | Select-Object -Property @('Name', 'Status', 'StartType'))
}

function Get-RdpPort {
    [CmdletBinding()]
    param()
    $rdp = Get-RdpRegistryValue -Path ${q(RDP_TCP_KEY)} -Name @('PortNumber')
    if ($rdp.Contains('PortNumber')) { return [int]$rdp['PortNumber'] }
    return 3389
}

function Get-RdpListener {
    # Who listens on the port: LocalAddress, LocalPort, OwningProcess (Get-NetTCPConnection), or
    # the .NET listener table where the NetTCPIP module is missing (no owning process then).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][int]$Port)
    if (Get-Command -Name 'Get-NetTCPConnection' -ErrorAction SilentlyContinue) {
        return @(Get-NetTCPConnection -State Listen -LocalPort $Port -ErrorAction SilentlyContinue | Select-Object -Property @('LocalAddress', 'LocalPort', 'OwningProcess') -First 4)
    }
    $table = [System.Net.NetworkInformation.IPGlobalProperties]::GetIPGlobalProperties().GetActiveTcpListeners()
    return @($table | Where-Object -FilterScript { $_.Port -eq $Port } | ForEach-Object -Process { [pscustomobject]@{ LocalAddress = $_.Address.ToString(); LocalPort = $_.Port; OwningProcess = $null } } | Select-Object -First 4)
}

function Wait-RdpListener {
    # Poll until something listens on the port or the time is up; returns the listeners.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][int]$Port, [int]$TimeoutSeconds = 30)
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    do {
        $listeners = @(Get-RdpListener -Port $Port)
        if ($listeners.Count -gt 0) { return $listeners }
        Start-Sleep -Seconds 1
    } while ((Get-Date) -lt $deadline)
    return @()
}

function ConvertTo-RdpCertSummary {
    # Thumbprint, Subject, Issuer, NotBefore, NotAfter, HasPrivateKey: the certificate object as
    # ConvertTo-Json writes it (dates as "\\/Date(ms)\\/" in Windows PowerShell 5.1).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, ValueFromPipeline = $true)]$Certificate)
    process {
        $Certificate | Select-Object -Property @(
            'Thumbprint',
            @{ Name = 'Subject'; Expression = { $_.Subject.Substring(0, [Math]::Min(120, $_.Subject.Length)) } },
            @{ Name = 'Issuer'; Expression = { $_.Issuer.Substring(0, [Math]::Min(120, $_.Issuer.Length)) } },
            'NotBefore', 'NotAfter', 'HasPrivateKey')
    }
}

function Get-RdpKeyFile {
    # Where a certificate's private key lives, and whether this account can open it. The RDP
    # self-signed key is a CSP container (MachineKeys); CNG keys live in Crypto\\Keys. When the key
    # cannot be opened, the listener's well-known container name is the fallback.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Certificate)
    $crypto = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft\\Crypto'
    $info = [ordered]@{ opened = $false; provider = $null; file = $null; sddl = $null; error = $null }
    $name = $null
    $folder = Join-Path -Path $crypto -ChildPath 'RSA\\MachineKeys'
    try {
        $key = $Certificate.PrivateKey
        if ($null -ne $key) {
            $info.opened = $true
            $info.provider = 'csp'
            $name = $key.CspKeyContainerInfo.UniqueKeyContainerName
        }
    } catch {
        $info.error = $_.Exception.Message
        try {
            $rsa = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
            if ($rsa -is [System.Security.Cryptography.RSACng]) {
                $info.opened = $true
                $info.provider = 'cng'
                $info.error = $null
                $name = $rsa.Key.UniqueName
                $folder = Join-Path -Path $crypto -ChildPath 'Keys'
            }
        } catch {
            $info.error = $_.Exception.Message
        }
    }
    if (-not $name) {
        $guid = (Get-RdpRegistryValue -Path 'HKLM:\\SOFTWARE\\Microsoft\\Cryptography' -Name @('MachineGuid'))['MachineGuid']
        if ($guid) { $name = ${q(RDP_CONTAINER_PREFIX)} + $guid }
    }
    if ($name) {
        $path = Join-Path -Path $folder -ChildPath $name
        if (Test-Path -LiteralPath $path -PathType Leaf) {
            $info.file = $path
            $info.sddl = Get-RdpPathSddl -Path $path
        }
    }
    if ($info.error -and $info.error.Length -gt 160) { $info.error = $info.error.Substring(0, 160) }
    return $info
}

function Get-RdpCertificateState {
    # The certificate the listener uses: the one pinned by SSLCertificateSHA1Hash (looked up in the
    # My and Remote Desktop stores), otherwise the newest in the Remote Desktop store.
    [CmdletBinding()]
    param([switch]$WithKey)
    $pin = Get-RdpRegistryValue -Path ${q(RDP_TCP_KEY)} -Name @('SSLCertificateSHA1Hash')
    $pinned = $null
    if ($pin.Contains('SSLCertificateSHA1Hash')) {
        $pinned = (@($pin['SSLCertificateSHA1Hash']) | ForEach-Object -Process { '{0:X2}' -f [int]$_ }) -join ''
    }
    $store = @()
    if (Test-Path -LiteralPath ${q(RD_STORE)}) {
        $store = @(Get-ChildItem -LiteralPath ${q(RD_STORE)} | Sort-Object -Property NotAfter -Descending)
    }
    $inUse = $null
    $source = 'none'
    if ($pinned) {
        $source = 'pinned-missing'
        foreach ($storePath in @('Cert:\\LocalMachine\\My', ${q(RD_STORE)})) {
            $candidate = Join-Path -Path $storePath -ChildPath $pinned
            if (Test-Path -LiteralPath $candidate) { $inUse = Get-Item -LiteralPath $candidate; $source = 'pinned'; break }
        }
    } elseif ($store.Count -gt 0) {
        $inUse = $store[0]
        $source = 'remote-desktop-store'
    }
    $state = [ordered]@{
        pinned = $pinned
        source = $source
        thumbprint = $null
        selfSigned = $null
        store = @($store | Select-Object -First 3 | ConvertTo-RdpCertSummary)
        inUse = $null
        key = $null
    }
    if ($null -ne $inUse) {
        $state.thumbprint = $inUse.Thumbprint
        $state.selfSigned = ($inUse.Subject -eq $inUse.Issuer)
        $state.inUse = $inUse | ConvertTo-RdpCertSummary
        if ($WithKey) { $state.key = Get-RdpKeyFile -Certificate $inUse }
    }
    return $state
}

function Get-RdpEventSummary {
    # Recent events that name the cause, newest first, bounded, messages cut to one line: Schannel
    # 36870/36871/36874/36888, RemoteConnectionManager 1055/1057/1058, Service Control Manager.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][datetime]$Since,
        [int]$Max = 6,
        [int]$MessageLength = 110,
        [string[]]$Provider = @('Schannel', 'Microsoft-Windows-TerminalServices-RemoteConnectionManager')
    )
    $ids = @{
        'Schannel' = @(36870, 36871, 36874, 36888)
        'Microsoft-Windows-TerminalServices-RemoteConnectionManager' = @(1050, 1055, 1057, 1058)
        'Service Control Manager' = @(7000, 7001, 7009, 7011, 7023, 7024, 7031, 7034)
    }
    $found = @()
    $errors = @()
    foreach ($name in $Provider) {
        try {
            $found += @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = $name; Id = $ids[$name]; StartTime = $Since } -MaxEvents 50 -ErrorAction Stop)
        } catch {
            if ($_.FullyQualifiedErrorId -notlike 'NoMatchingEventsFound*') { $errors += ('{0}: {1}' -f $name, $_.Exception.Message) }
        }
    }
    $counts = [ordered]@{}
    foreach ($group in @($found | Group-Object -Property Id)) { $counts[[string]$group.Name] = $group.Count }
    $newest = @($found | Sort-Object -Property TimeCreated -Descending | Select-Object -First $Max | Select-Object -Property @('Id', 'ProviderName', 'TimeCreated',
        @{ Name = 'Message'; Expression = { $m = [string]$_.Message -replace '\\s+', ' '; $m.Substring(0, [Math]::Min($MessageLength, $m.Length)) } }))
    return [ordered]@{ since = $Since.ToUniversalTime().ToString('o'); counts = $counts; newest = $newest; errors = $errors }
}

function Compress-RdpResult {
    # Azure Run Command keeps only the last 4,096 bytes of output: drop the named bulky parts,
    # in order, until the JSON result fits, and say what was dropped.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]$Result,
        [int]$MaxLength = 3600,
        [string[]]$Drop = @()
    )
    $dropped = @()
    foreach ($path in $Drop) {
        if (($Result | ConvertTo-Json -Compress -Depth 8).Length -le $MaxLength) { break }
        $parts = $path.Split('.')
        $node = $Result
        for ($i = 0; $i -lt $parts.Count - 1 -and $null -ne $node; $i++) { $node = $node[$parts[$i]] }
        if ($null -ne $node -and $node.Contains($parts[-1])) { $node.Remove($parts[-1]); $dropped += $path }
    }
    if ($dropped.Count -gt 0) { $Result['dropped'] = $dropped }
    return $Result
}`;

/** Join script parts (function definitions, then the body) with blank lines. */
export function psJoin(...parts: string[]): string {
  return parts.map((p) => p.replace(/\s+$/, '')).join('\n\n');
}
