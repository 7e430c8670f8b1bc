# windows.ps1: The Windows boundary: every call to a Windows-only cmdlet, provider drive (HKLM:, Cert:), .NET API or
# native program that rdpfix's steps make goes through one of these functions, and nothing else in scripts/ps does
# (test/windows-boundary.test.ts checks it on PowerShell's AST). The tests' Windows twin (test/windows/) stands in for
# exactly these functions, so everything else in a step runs for real. Each works on Windows PowerShell 5.1 (.NET
# Framework) and on PowerShell 7 on Windows (.NET); where the two differ, the function says how it decides.

function Assert-RdpHost {
    # Every step starts here: on anything but Windows, or (-Elevated) without Administrator rights, it throws one
    # message saying why, which the script's catch turns into its one failed JSON result.
    [CmdletBinding()]
    param([switch]$Elevated)
    if ([System.Environment]::OSVersion.Platform -ne [System.PlatformID]::Win32NT) {
        throw ('this script runs on Windows (Windows PowerShell 5.1, or PowerShell 7 on Windows); this is PowerShell {0} on {1}: nothing was changed' -f $PSVersionTable.PSVersion, [System.Environment]::OSVersion.VersionString)
    }
    if ($Elevated) {
        $principal = New-Object -TypeName System.Security.Principal.WindowsPrincipal -ArgumentList ([System.Security.Principal.WindowsIdentity]::GetCurrent())
        if (-not $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)) {
            throw 'this step needs Administrator rights: run it in an elevated PowerShell (Run as administrator), over WinRM/SSH as an administrator, or through Azure Run Command (SYSTEM); nothing was changed'
        }
    }
}

function Get-RdpRunAs {
    # The SID of the account the script runs as (S-1-5-18 is SYSTEM).
    [CmdletBinding()]
    param()
    return [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value
}

function ConvertTo-RdpAccountSid {
    # DOMAIN\Name as a SID string, or $null when it does not resolve.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Domain, [Parameter(Mandatory = $true)][string]$Name)
    try {
        $account = New-Object -TypeName System.Security.Principal.NTAccount -ArgumentList $Domain, $Name
        return $account.Translate([System.Security.Principal.SecurityIdentifier]).Value
    } catch {
        Write-Verbose -Message ('{0}\{1} did not resolve: {2}' -f $Domain, $Name, $_.Exception.Message)
        return $null
    }
}

function Test-RdpRegistryKey {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Path)
    return (Test-Path -LiteralPath $Path)
}

function Get-RdpRegistryValue {
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
}

function New-RdpRegistryKey {
    # The key and any missing parent keys.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path)
    if ($PSCmdlet.ShouldProcess($Path, 'Create the registry key')) {
        $null = New-Item -Path $Path -Force
    }
}

function Set-RdpRegistryValue {
    # Create or overwrite one value (DWord or Binary).
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][ValidateSet('DWord', 'Binary')][string]$Type,
        [Parameter(Mandatory = $true)]$Value
    )
    if ($PSCmdlet.ShouldProcess(('{0}\{1}' -f $Path, $Name), ('Set to {0}' -f $Value))) {
        $null = New-ItemProperty -LiteralPath $Path -Name $Name -PropertyType $Type -Value $Value -Force
    }
}

function Remove-RdpRegistryValue {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][string]$Name)
    if ($PSCmdlet.ShouldProcess(('{0}\{1}' -f $Path, $Name), 'Remove the value')) {
        Remove-ItemProperty -LiteralPath $Path -Name $Name -Confirm:$false
    }
}

function Get-RdpWinService {
    # Name, Status and StartType of the services that exist (Windows PowerShell 5.1 writes the enums
    # as numbers in JSON: Running = 4, Stopped = 1; Automatic = 2, Manual = 3, Disabled = 4).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string[]]$Name)
    return @(Get-Service -Name $Name -ErrorAction SilentlyContinue | Select-Object -Property @('Name', 'Status', 'StartType'))
}

function Get-RdpServiceProcessId {
    # The process id of a running service, or $null.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name)
    $service = Get-CimInstance -ClassName Win32_Service -Filter ("Name='{0}'" -f ($Name -replace "'", '')) -ErrorAction SilentlyContinue
    if ($null -eq $service) { return $null }
    return [int]$service.ProcessId
}

function Restart-RdpWinService {
    # Restart-Service -Force (which stops the dependent services too).
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Name)
    if ($PSCmdlet.ShouldProcess($Name, 'Restart the service')) {
        Restart-Service -Name $Name -Force -Confirm:$false
    }
}

function Start-RdpWinService {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Name)
    if ($PSCmdlet.ShouldProcess($Name, 'Start the service')) {
        Start-Service -Name $Name -Confirm:$false
    }
}

function Wait-RdpWinService {
    # Wait until the service reaches Status; throws when the time is up.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name, [string]$Status = 'Running', [int]$TimeoutSeconds = 60)
    (Get-Service -Name $Name).WaitForStatus($Status, [TimeSpan]::FromSeconds($TimeoutSeconds))
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

function Get-RdpFirewallRule {
    # The rules of one firewall group as Windows applies them, or @() where the NetSecurity module is missing.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Group)
    if (-not (Get-Command -Name 'Get-NetFirewallRule' -ErrorAction SilentlyContinue)) { return @() }
    return @(Get-NetFirewallRule -Group $Group -PolicyStore ActiveStore -ErrorAction SilentlyContinue | Select-Object -Property @('Name', 'Enabled', 'Direction', 'Action') -First 8)
}

function Invoke-RdpTsSetting {
    # One Win32_TSGeneralSetting method on the RDP-Tcp listener (it applies the value to the listener,
    # unlike a bare registry write); returns its ReturnValue (0 is success). Throws when WMI refuses.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][ValidateSet('SetUserAuthenticationRequired', 'SetSecurityLayer', 'SetEncryptionLevel')][string]$MethodName,
        [Parameter(Mandatory = $true)][string]$ArgumentName,
        [Parameter(Mandatory = $true)][uint32]$Value
    )
    if ($PSCmdlet.ShouldProcess('Win32_TSGeneralSetting RDP-Tcp', ('{0} {1}' -f $MethodName, $Value))) {
        $setting = Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName 'Win32_TSGeneralSetting' -Filter "TerminalName='RDP-Tcp'" -ErrorAction Stop
        $call = Invoke-CimMethod -InputObject $setting -MethodName $MethodName -Arguments @{ $ArgumentName = $Value } -Confirm:$false
        return [int]$call.ReturnValue
    }
    return $null
}

function Get-RdpDomainJoined {
    # Win32_ComputerSystem.PartOfDomain, or $null when CIM does not answer.
    [CmdletBinding()]
    param()
    $computer = Get-CimInstance -ClassName Win32_ComputerSystem -ErrorAction SilentlyContinue
    if ($null -eq $computer) { return $null }
    return [bool]$computer.PartOfDomain
}

function Test-RdpCertificateStore {
    # Does Cert:\LocalMachine\<Store> exist (the Remote Desktop store appears with its first certificate).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][ValidateSet('Remote Desktop', 'My')][string]$Store)
    return (Test-Path -LiteralPath ('Cert:\LocalMachine\' + $Store))
}

function Get-RdpStoreCertificate {
    # The certificates of Cert:\LocalMachine\<Store> (or only -Thumbprint), @() when there are none.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][ValidateSet('Remote Desktop', 'My')][string]$Store, [AllowEmptyString()][string]$Thumbprint = '')
    $path = 'Cert:\LocalMachine\' + $Store
    if (-not (Test-Path -LiteralPath $path)) { return @() }
    if ($Thumbprint) {
        $item = $path + '\' + $Thumbprint
        if (-not (Test-Path -LiteralPath $item)) { return @() }
        return @(Get-Item -LiteralPath $item)
    }
    return @(Get-ChildItem -LiteralPath $path)
}

function Remove-RdpStoreCertificate {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][ValidateSet('Remote Desktop', 'My')][string]$Store, [Parameter(Mandatory = $true)][string]$Thumbprint)
    if ($PSCmdlet.ShouldProcess(('Cert:\LocalMachine\{0}\{1}' -f $Store, $Thumbprint), 'Remove the certificate')) {
        Remove-Item -LiteralPath ('Cert:\LocalMachine\' + $Store + '\' + $Thumbprint) -Confirm:$false
    }
}

function Export-RdpCertificate {
    # The public certificate as a DER .cer file.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)]$Certificate, [Parameter(Mandatory = $true)][string]$FilePath)
    if ($PSCmdlet.ShouldProcess($FilePath, 'Export the certificate')) {
        $null = Export-Certificate -Cert $Certificate -FilePath $FilePath -Type CERT
    }
}

function Get-RdpCertificateKey {
    # Open a certificate's private key: provider ('csp' for a CryptoAPI container in RSA\MachineKeys,
    # 'cng' for Crypto\Keys), its unique container name, or the error. On .NET Framework (5.1)
    # .PrivateKey is an RSACryptoServiceProvider for a CSP key and throws for a CNG one; on .NET (7.x)
    # it is obsolete, may return RSACng or throw, so RSACertificateExtensions is asked next either way.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Certificate)
    $info = [ordered]@{ opened = $false; provider = $null; name = $null; error = $null }
    try {
        $key = $Certificate.PrivateKey
        if ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $info.opened = $true
            $info.provider = 'csp'
            $info.name = $key.CspKeyContainerInfo.UniqueKeyContainerName
            return $info
        }
    } catch {
        $info.error = $_.Exception.Message
    }
    try {
        $rsa = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($rsa -is [System.Security.Cryptography.RSACng]) {
            $info.opened = $true
            $info.provider = 'cng'
            $info.error = $null
            $info.name = $rsa.Key.UniqueName
        } elseif ($rsa -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $info.opened = $true
            $info.provider = 'csp'
            $info.error = $null
            $info.name = $rsa.CspKeyContainerInfo.UniqueKeyContainerName
        }
    } catch {
        $info.error = $_.Exception.Message
    }
    return $info
}

function Get-RdpPathSddl {
    # Owner, group and DACL as SDDL, or $null. Reads the file's own descriptor (Get-Acl needs to list
    # the parent, which a hardened MachineKeys folder refuses). .NET Framework (5.1) has the static
    # [IO.File]::GetAccessControl; .NET (7.x) has only FileSystemAclExtensions, so the type decides.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [switch]$Directory
    )
    $sections = [System.Security.AccessControl.AccessControlSections]'Owner, Group, Access'
    try {
        $extensions = 'System.IO.FileSystemAclExtensions' -as [type]
        if ($null -ne $extensions) {
            if ($Directory) { $descriptor = $extensions::GetAccessControl((New-Object -TypeName System.IO.DirectoryInfo -ArgumentList $Path), $sections) }
            else { $descriptor = $extensions::GetAccessControl((New-Object -TypeName System.IO.FileInfo -ArgumentList $Path), $sections) }
        } elseif ($Directory) { $descriptor = [System.IO.Directory]::GetAccessControl($Path, $sections) }
        else { $descriptor = [System.IO.File]::GetAccessControl($Path, $sections) }
        return $descriptor.GetSecurityDescriptorSddlForm($sections)
    } catch {
        Write-Verbose -Message ('cannot read the security descriptor of {0}: {1}' -f $Path, $_.Exception.Message)
        return $null
    }
}

function Set-RdpPathSddl {
    # Replace only the DACL (and its protection flag) from an SDDL string; owner and SACL are kept.
    # The same 5.1/7.x split as Get-RdpPathSddl.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Sddl,
        [switch]$Directory
    )
    $sections = [System.Security.AccessControl.AccessControlSections]::Access
    if ($PSCmdlet.ShouldProcess($Path, 'Set the access control list')) {
        $extensions = 'System.IO.FileSystemAclExtensions' -as [type]
        if ($Directory) {
            $descriptor = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
            $descriptor.SetSecurityDescriptorSddlForm($Sddl, $sections)
            if ($null -ne $extensions) { $extensions::SetAccessControl((New-Object -TypeName System.IO.DirectoryInfo -ArgumentList $Path), $descriptor) }
            else { [System.IO.Directory]::SetAccessControl($Path, $descriptor) }
        } else {
            $descriptor = New-Object -TypeName System.Security.AccessControl.FileSecurity
            $descriptor.SetSecurityDescriptorSddlForm($Sddl, $sections)
            if ($null -ne $extensions) { $extensions::SetAccessControl((New-Object -TypeName System.IO.FileInfo -ArgumentList $Path), $descriptor) }
            else { [System.IO.File]::SetAccessControl($Path, $descriptor) }
        }
    }
}

function New-RdpProtectedDirectory {
    # Create a directory WITH its security descriptor in one call, so it never has, even for a moment, the ACL its
    # parent would pass down (ProgramData grants BUILTIN\Users read): owner Administrators, DACL protected
    # (inheritance off), SYSTEM and Administrators full control, inherited by what is created in it, nothing else.
    # CreateDirectory applies a descriptor only to a directory it creates, so an existing path is refused (and the
    # caller reads the result back). .NET Framework (5.1) has [IO.Directory]::CreateDirectory(path, security); .NET
    # (7.x) has only FileSystemAclExtensions.Create, so the type decides, as in Get-RdpPathSddl.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path)
    if (Test-Path -LiteralPath $Path) { throw ('{0} already exists: a protected folder is only created new' -f $Path) }
    if ($PSCmdlet.ShouldProcess($Path, 'Create the folder readable only by SYSTEM and Administrators')) {
        $security = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
        $security.SetSecurityDescriptorSddlForm('O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)', [System.Security.AccessControl.AccessControlSections]'Owner, Access')
        $extensions = 'System.IO.FileSystemAclExtensions' -as [type]
        if ($null -ne $extensions) { $null = $extensions::Create((New-Object -TypeName System.IO.DirectoryInfo -ArgumentList $Path), $security) }
        else { $null = [System.IO.Directory]::CreateDirectory($Path, $security) }
    }
}

function ConvertFrom-RdpSddl {
    # An SDDL string parsed by Windows: the owner SID, whether a DACL is present, and its entries
    # (type AccessAllowed/AccessDenied/..., SID, mask; object and callback entries are left out).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Sddl)
    $raw = New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl
    $owner = $null
    if ($null -ne $raw.Owner) { $owner = $raw.Owner.Value }
    $entries = @()
    if ($null -ne $raw.DiscretionaryAcl) {
        foreach ($entry in $raw.DiscretionaryAcl) {
            if ($entry -isnot [System.Security.AccessControl.KnownAce]) { continue }
            $entries += [pscustomobject]@{ type = $entry.AceType.ToString(); sid = $entry.SecurityIdentifier.Value; mask = [int]$entry.AccessMask }
        }
    }
    return [pscustomobject]@{ owner = $owner; daclPresent = ($null -ne $raw.DiscretionaryAcl); entries = $entries }
}

function ConvertTo-RdpCanonicalSddl {
    # Owner and DACL in Windows' own canonical SDDL rendering, for comparing two descriptors.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Sddl)
    $sections = [System.Security.AccessControl.AccessControlSections]'Owner, Access'
    return (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl).GetSddlForm($sections)
}

function Invoke-RdpNative {
    # Runs a native program with an argument array and returns its output lines; a non-zero exit
    # code is an error naming the program and the last lines it printed. Windows PowerShell 5.1 turns
    # a native program's stderr into errors under $ErrorActionPreference = 'Stop' and 7.x does not, so
    # the preference is Continue here and only the exit code decides.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][ValidateSet('icacls.exe', 'reg.exe', 'robocopy.exe', 'netsh.exe')][string]$FilePath,
        [Parameter(Mandatory = $true)][string[]]$ArgumentList,
        [int]$MaxExitCode = 0
    )
    $ErrorActionPreference = 'Continue'
    $output = @(& $FilePath @ArgumentList 2>&1 | ForEach-Object -Process { [string]$_ })
    if ($LASTEXITCODE -gt $MaxExitCode -or $LASTEXITCODE -lt 0) {
        throw ('{0} {1} failed with exit code {2}: {3}' -f $FilePath, $ArgumentList[0], $LASTEXITCODE, (($output | Select-Object -Last 3) -join ' '))
    }
    return $output
}

function Get-RdpScheduledTask {
    # State and next run time (UTC, ISO 8601) of a task, or $null (also where the ScheduledTasks module is missing).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$TaskName, [Parameter(Mandatory = $true)][string]$TaskPath)
    if (-not (Get-Command -Name 'Get-ScheduledTask' -ErrorAction SilentlyContinue)) { return $null }
    $task = Get-ScheduledTask -TaskName $TaskName -TaskPath $TaskPath -ErrorAction SilentlyContinue
    if ($null -eq $task) { return $null }
    $next = $null
    $info = Get-ScheduledTaskInfo -InputObject $task -ErrorAction SilentlyContinue
    if ($null -ne $info -and $null -ne $info.NextRunTime) { $next = $info.NextRunTime.ToUniversalTime().ToString('o') }
    return [pscustomobject]@{ State = [string]$task.State; NextRunTime = $next }
}

function Register-RdpScheduledTask {
    # A one-time task, as SYSTEM, that runs powershell.exe with -EncodedCommand at -At.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$TaskName,
        [Parameter(Mandatory = $true)][string]$TaskPath,
        [Parameter(Mandatory = $true)][string]$EncodedCommand,
        [Parameter(Mandatory = $true)][datetime]$At,
        [Parameter(Mandatory = $true)][string]$Description
    )
    if ($PSCmdlet.ShouldProcess(('{0}{1}' -f $TaskPath, $TaskName), ('Register a one-time SYSTEM task at {0}' -f $At))) {
        $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ' + $EncodedCommand)
        $trigger = New-ScheduledTaskTrigger -Once -At $At
        $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
        $settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Minutes 10)
        $null = Register-ScheduledTask -TaskName $TaskName -TaskPath $TaskPath -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Description $Description -Force
    }
}

function Unregister-RdpScheduledTask {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$TaskName, [Parameter(Mandatory = $true)][string]$TaskPath)
    if ($PSCmdlet.ShouldProcess(('{0}{1}' -f $TaskPath, $TaskName), 'Remove the scheduled task')) {
        Unregister-ScheduledTask -TaskName $TaskName -TaskPath $TaskPath -Confirm:$false
    }
}

function Get-RdpWinEvent {
    # System log events of one provider and ids since a time (at most 50), @() when there are none;
    # any other failure throws.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$ProviderName, [Parameter(Mandatory = $true)][int[]]$Id, [Parameter(Mandatory = $true)][datetime]$StartTime)
    try {
        return @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = $ProviderName; Id = $Id; StartTime = $StartTime } -MaxEvents 50 -ErrorAction Stop)
    } catch {
        if ($_.FullyQualifiedErrorId -like 'NoMatchingEventsFound*') { return @() }
        throw
    }
}

function Get-RdpOwnSessionId {
    # The Windows session this script runs in (0 over WinRM, SSH and Run Command).
    [CmdletBinding()]
    param()
    return [System.Diagnostics.Process]::GetCurrentProcess().SessionId
}

function Get-RdpWtsSession {
    # Every session from the WTS API (Id, Station, State, User, Client), bounded by a timeout: a hung
    # TermService must not hang the script.
    [CmdletBinding()]
    param([int]$TimeoutSeconds = 15)
    if ($null -eq ('RdpfixWts' -as [type])) {
        $source = @'
using System;
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
}
'@
        Add-Type -TypeDefinition $source -Language CSharp
    }
    return @([RdpfixWts]::List($TimeoutSeconds * 1000))
}

function Get-RdpNetIPInterface {
    # IP interfaces of one family (InterfaceAlias, InterfaceIndex, NlMtu), all or only -InterfaceIndex.
    [CmdletBinding()]
    param([ValidateSet('IPv4', 'IPv6')][string]$AddressFamily = 'IPv4', [int]$InterfaceIndex = -1)
    if ($InterfaceIndex -ge 0) { return @(Get-NetIPInterface -InterfaceIndex $InterfaceIndex -AddressFamily $AddressFamily -ErrorAction SilentlyContinue) }
    return @(Get-NetIPInterface -AddressFamily $AddressFamily)
}

function Find-RdpNetRoute {
    # Find-NetRoute's answer for one remote address (the source address and the route chosen).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Address)
    return @(Find-NetRoute -RemoteIPAddress $Address -ErrorAction Stop)
}

function Get-RdpNetAdapter {
    # The adapter behind an interface index, or $null.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][int]$InterfaceIndex)
    return (Get-NetAdapter -InterfaceIndex $InterfaceIndex -ErrorAction SilentlyContinue)
}

function Test-RdpHandshake {
    # What a client sees of this server's RDP listener, asked from the server itself: the TCP connect,
    # the X.224 Connection Request with SSL|HYBRID|HYBRID_EX (the 44 bytes of scripts/lib/x224.ts
    # connectionRequest with the cookie "rdpfix"), the Connection Confirm decoded as parseConfirm does,
    # then TLS on the same socket (SslStream) when a TLS-based protocol was selected. Each step (connect,
    # X.224 write and read, every read of the TLS handshake) is bounded by -TimeoutMs. Raw evidence only:
    # Get-RdpHandshakeCause (handshake.ps1) names the cause. Only .NET Framework 4.5 APIs, so Windows
    # PowerShell 5.1 on Server 2012 R2 runs it as PowerShell 7 does.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Address,
        [Parameter(Mandatory = $true)][ValidateRange(1, 65535)][int]$Port,
        [ValidateRange(100, 60000)][int]$TimeoutMs = 3000
    )
    $evidence = [ordered]@{
        address = $Address; port = $Port; timeoutMs = $TimeoutMs
        checked = [System.DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ss.fffZ', [System.Globalization.CultureInfo]::InvariantCulture)
        tcp = [ordered]@{ outcome = 'error'; ms = 0; error = $null }
        negotiation = $null
        tls = $null
    }
    # A failed call's innermost exception says what happened (a SocketException for connect, send
    # and receive: its SocketErrorCode); the text kept is at most 400 characters.
    $client = $null
    $ssl = $null
    try {
        $ip = $null
        if (-not [System.Net.IPAddress]::TryParse($Address, [ref]$ip)) {
            try { $ip = @([System.Net.Dns]::GetHostAddresses($Address))[0] } catch { $evidence.tcp.error = $_.Exception.GetBaseException().Message; return $evidence }
        }
        # --- 1. TCP connect, bounded.
        $client = New-Object -TypeName System.Net.Sockets.TcpClient -ArgumentList @($ip.AddressFamily)
        $client.NoDelay = $true
        $watch = [System.Diagnostics.Stopwatch]::StartNew()
        $pending = $client.BeginConnect($ip, $Port, $null, $null)
        $inTime = $pending.AsyncWaitHandle.WaitOne($TimeoutMs)
        $evidence.tcp.ms = [Math]::Round($watch.Elapsed.TotalMilliseconds, 1)
        if (-not $inTime) { $evidence.tcp.outcome = 'timeout'; return $evidence }
        try {
            $client.EndConnect($pending)
            $evidence.tcp.outcome = 'connected'
        } catch {
            $base = $_.Exception.GetBaseException()
            $code = $null
            if ($base -is [System.Net.Sockets.SocketException]) { $code = [string]$base.SocketErrorCode }
            $evidence.tcp.error = $code
            if ($code -eq 'ConnectionRefused') { $evidence.tcp.outcome = 'refused' }
            elseif ($code -eq 'TimedOut') { $evidence.tcp.outcome = 'timeout' }
            elseif ($code -eq 'ConnectionReset') { $evidence.tcp.outcome = 'reset' }
            elseif ($code -eq 'HostUnreachable' -or $code -eq 'NetworkUnreachable') { $evidence.tcp.outcome = 'unreachable' }
            else { $evidence.tcp.error = $base.Message }
            return $evidence
        }
        $socket = $client.Client
        # --- 2. The Connection Request: TPKT (4) + X.224 CR (7) + cookie line + RDP_NEG_REQ (8).
        $requested = 11
        $cookie = [System.Text.Encoding]::ASCII.GetBytes('Cookie: mstshash=rdpfix')
        $request = New-Object -TypeName System.Collections.Generic.List[byte]
        $length = 19 + $cookie.Length + 2
        foreach ($b in @(3, 0, 0, $length, ($length - 5), 0xe0, 0, 0, 0, 0, 0)) { $request.Add([byte]$b) }
        $request.AddRange($cookie)
        $request.Add(13); $request.Add(10)
        foreach ($b in @(1, 0, 8, 0, $requested, 0, 0, 0)) { $request.Add([byte]$b) }
        $negotiation = [ordered]@{
            requested = $requested; outcome = $null; type = $null; selectedProtocol = $null; failureCode = $null
            bytes = 0; firstBytes = $null; text = $null; trailing = $null; reason = $null; ms = 0; error = $null
        }
        $evidence.negotiation = $negotiation
        $watch = [System.Diagnostics.Stopwatch]::StartNew()
        $socket.SendTimeout = $TimeoutMs
        try {
            $null = $socket.Send($request.ToArray())
        } catch {
            $base = $_.Exception.GetBaseException()
            $negotiation.outcome = 'error'; $negotiation.error = $base.Message
            if ($base -is [System.Net.Sockets.SocketException] -and ([string]$base.SocketErrorCode -eq 'ConnectionReset' -or [string]$base.SocketErrorCode -eq 'ConnectionAborted')) { $negotiation.outcome = 'reset' }
            return $evidence
        }
        # --- 3. The Connection Confirm: read until it decodes, at most 64 bytes (parseConfirm's limit).
        $buffer = New-Object -TypeName byte[] -ArgumentList 65
        $have = 0
        $confirmLength = 0
        while ($null -eq $negotiation.outcome) {
            $left = $TimeoutMs - $watch.ElapsedMilliseconds
            if ($left -le 0 -or -not $socket.Poll([int]($left * 1000), [System.Net.Sockets.SelectMode]::SelectRead)) { $negotiation.outcome = 'timeout'; break }
            try {
                $n = $socket.Receive($buffer, $have, $buffer.Length - $have, [System.Net.Sockets.SocketFlags]::None)
            } catch {
                $base = $_.Exception.GetBaseException()
                if ($base -is [System.Net.Sockets.SocketException] -and ([string]$base.SocketErrorCode -eq 'ConnectionReset' -or [string]$base.SocketErrorCode -eq 'ConnectionAborted')) { $negotiation.outcome = 'reset' }
                else { $negotiation.outcome = 'error'; $negotiation.error = $base.Message }
                break
            }
            if ($n -eq 0) { $negotiation.outcome = 'closed'; break }
            $have += $n
            # parseConfirm (x224.ts): TPKT header, X.224 CC, then RDP_NEG_RSP / RDP_NEG_FAILURE or nothing.
            if ($buffer[0] -ne 3) { $negotiation.outcome = 'not-x224'; $negotiation.reason = 'not a TPKT header (first byte is not 3)'; break }
            if ($have -ge 2 -and $buffer[1] -ne 0) { $negotiation.outcome = 'not-x224'; $negotiation.reason = 'TPKT reserved byte is not 0'; break }
            if ($have -lt 4) { continue }
            $tpkt = [int]$buffer[2] * 256 + [int]$buffer[3]
            if ($tpkt -lt 11) { $negotiation.outcome = 'not-x224'; $negotiation.reason = ('TPKT length {0} is too short for a Connection Confirm' -f $tpkt); break }
            if ($tpkt -gt 64) { $negotiation.outcome = 'not-x224'; $negotiation.reason = ('TPKT length {0} is larger than any Connection Confirm' -f $tpkt); break }
            if ($have -lt $tpkt) { continue }
            $confirmLength = $tpkt
            if (($buffer[5] -band 0xf0) -ne 0xd0) { $negotiation.outcome = 'not-x224'; $negotiation.reason = ('X.224 TPDU code 0x{0:x} is not a Connection Confirm (0xd0)' -f ($buffer[5] -band 0xf0)); break }
            if ([int]$buffer[4] + 5 -ne $tpkt) { $negotiation.outcome = 'not-x224'; $negotiation.reason = ('X.224 length indicator {0} does not match TPKT length {1}' -f $buffer[4], $tpkt); break }
            if ($tpkt -eq 11) { $negotiation.outcome = 'no-negotiation'; break }
            if ($tpkt -lt 19) { $negotiation.outcome = 'not-x224'; $negotiation.reason = ('negotiation data of {0} bytes is too short' -f ($tpkt - 11)); break }
            if ([int]$buffer[13] + 256 * [int]$buffer[14] -ne 8) { $negotiation.outcome = 'not-x224'; $negotiation.reason = 'negotiation structure length is not 8'; break }
            $value = [System.BitConverter]::ToUInt32($buffer, 15)
            if ($buffer[11] -eq 2) { $negotiation.outcome = 'response'; $negotiation.type = 'RDP_NEG_RSP'; $negotiation.selectedProtocol = [long]$value }
            elseif ($buffer[11] -eq 3) { $negotiation.outcome = 'failure'; $negotiation.type = 'RDP_NEG_FAILURE'; $negotiation.failureCode = [long]$value }
            else { $negotiation.outcome = 'not-x224'; $negotiation.reason = ('negotiation type 0x{0:x} is neither RDP_NEG_RSP nor RDP_NEG_FAILURE' -f $buffer[11]) }
            break
        }
        if ($null -eq $negotiation.outcome) { $negotiation.outcome = 'timeout' }
        $negotiation.ms = [Math]::Round($watch.Elapsed.TotalMilliseconds, 1)
        $negotiation.bytes = $have
        if ($have -gt 0) {
            $shown = [Math]::Min($have, 32)
            $negotiation.firstBytes = ([System.BitConverter]::ToString($buffer, 0, $shown) -replace '-', '').ToLowerInvariant()
            $ascii = [System.Text.Encoding]::ASCII.GetString($buffer, 0, $shown)
            if ($ascii -match '^[\x20-\x7e\r\n\t]+$') { $negotiation.text = $ascii }
        }
        if ($confirmLength -gt 0 -and $have -gt $confirmLength) { $negotiation.trailing = ([System.BitConverter]::ToString($buffer, $confirmLength, $have - $confirmLength) -replace '-', '').ToLowerInvariant() }
        if ($negotiation.outcome -ne 'response' -or ($negotiation.selectedProtocol -band 0xf) -eq 0) { return $evidence }

        # --- 4. TLS on the same socket. Tls12|Tls11|Tls: what SChannel speaks on every Windows Server from
        # 2012 R2 to 2022 (TLS 1.3 only on 2022, and SslProtocols.Tls13 does not exist before .NET
        # Framework 4.8; SslProtocols.None, "the system default", only from 4.7; Ssl3 and Ssl2 throw
        # where they are disabled). Offering 1.0-1.2 in one ClientHello also asks what the client
        # probe's version scan asks: a server that takes only TLS 1.0 or 1.1 answers with that.
        $tls = [ordered]@{
            outcome = $null; offered = 'Tls, Tls11, Tls12'; protocol = $null; cipher = $null; certificate = $null
            policyErrors = $null; alert = $null; errorCode = $null; firstBytes = $null; error = $null; ms = 0
        }
        $evidence.tls = $tls
        $watch = [System.Diagnostics.Stopwatch]::StartNew()
        if ($negotiation.trailing) {
            # Bytes after the confirm, before our ClientHello (xrdp's MCS Disconnect Provider Ultimatum):
            # they are what the TLS handshake would read first, and they are not TLS.
            $first = [Convert]::ToInt32($negotiation.trailing.Substring(0, 2), 16)
            if ($first -lt 20 -or $first -gt 23) { $tls.outcome = 'not-tls'; $tls.firstBytes = $negotiation.trailing; return $evidence }
        }
        $seen = [ordered]@{ certificate = $null; errors = $null }
        # Accept any certificate and keep it: the evidence is what the server sends, not whether this
        # machine trusts it. SslStream calls this on the calling thread in AuthenticateAsClient (synchronous),
        # so a script block works as the delegate.
        $accept = [System.Net.Security.RemoteCertificateValidationCallback] {
            param($Sender, $Certificate, $Chain, $PolicyErrors)
            if ($null -ne $Certificate) {
                $seen.certificate = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList @(, $Certificate)
            }
            $seen.errors = [string]$PolicyErrors
            return $true
        }
        $stream = $client.GetStream()
        $stream.ReadTimeout = $TimeoutMs
        $stream.WriteTimeout = $TimeoutMs
        $ssl = New-Object -TypeName System.Net.Security.SslStream -ArgumentList @($stream, $false, $accept)
        $protocols = [System.Security.Authentication.SslProtocols]::Tls -bor [System.Security.Authentication.SslProtocols]::Tls11 -bor [System.Security.Authentication.SslProtocols]::Tls12
        try {
            $ssl.AuthenticateAsClient($Address, (New-Object -TypeName System.Security.Cryptography.X509Certificates.X509CertificateCollection), $protocols, $false)
            $tls.outcome = 'ok'
            $tls.protocol = [string]$ssl.SslProtocol
            if ($ssl.PSObject.Properties['NegotiatedCipherSuite']) { $tls.cipher = [string]$ssl.NegotiatedCipherSuite }
            else { $tls.cipher = ('{0} {1}' -f $ssl.CipherAlgorithm, $ssl.CipherStrength) }
        } catch {
            # Every message down the chain (SslStream wraps what SChannel or OpenSSL said), the method
            # call's own wrapper left out; SChannel's error code where it gives one.
            $e = $_.Exception
            if ($e -is [System.Management.Automation.MethodInvocationException] -and $null -ne $e.InnerException) { $e = $e.InnerException }
            $list = @()
            $code = $null
            while ($null -ne $e) {
                $list += $e.Message
                if ($e -is [System.Net.Sockets.SocketException]) { $code = [string]$e.SocketErrorCode }
                elseif ($e -is [System.ComponentModel.Win32Exception] -and $e.NativeErrorCode -ne 0) { $tls.errorCode = ('0x{0:X8}' -f $e.NativeErrorCode) }
                $e = $e.InnerException
            }
            $text = ($list -join ' -> ')
            if ($text.Length -gt 400) { $text = $text.Substring(0, 400) }
            $tls.error = $text
            if ($code -eq 'ConnectionReset' -or $code -eq 'ConnectionAborted') { $tls.outcome = 'reset' }
            elseif ($code -eq 'TimedOut' -or $text -match 'timed out|did not properly respond') { $tls.outcome = 'timeout' }
            elseif ($text -match 'alert ([a-z0-9_ ]+)') {
                # OpenSSL names the alert ("tlsv1 alert protocol version"); SChannel gives its error code.
                $tls.outcome = 'alert'
                $tls.alert = ($Matches[1].Trim() -replace ' ', '_')
            }
            elseif ($tls.errorCode -eq '0x80090331' -or $tls.errorCode -eq '0x80090326') { $tls.outcome = 'alert' }
            elseif ($text -match 'EOF or 0 bytes|remote party has closed|closed the transport stream') { $tls.outcome = 'closed' }
            elseif ($text -match 'frame size|corrupted frame|unexpected packet format') { $tls.outcome = 'not-tls' }
            elseif ($_.Exception.InnerException -is [System.Security.Authentication.AuthenticationException] -or $_.Exception -is [System.Security.Authentication.AuthenticationException]) { $tls.outcome = 'protocol-error' }
            else { $tls.outcome = 'error' }
        }
        $tls.ms = [Math]::Round($watch.Elapsed.TotalMilliseconds, 1)
        $tls.policyErrors = $seen.errors
        if ($null -ne $seen.certificate) {
            $c = $seen.certificate
            $tls.certificate = [ordered]@{
                thumbprint = $c.Thumbprint
                subject = $c.Subject
                issuer = $c.Issuer
                notBefore = $c.NotBefore.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffZ', [System.Globalization.CultureInfo]::InvariantCulture)
                notAfter = $c.NotAfter.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffZ', [System.Globalization.CultureInfo]::InvariantCulture)
            }
        }
        return $evidence
    } finally {
        if ($null -ne $ssl) { $ssl.Dispose() }
        if ($null -ne $client) { $client.Close() }
    }
}

function Get-RdpListenerAdapter {
    # The network adapter the RDP-Tcp listener is bound to (LanAdapter not 0): Win32_TSNetworkAdapterSetting's
    # LANA number, adapter id and name, and the IPv4 addresses of the adapter configuration with that
    # id (Win32_NetworkAdapterConfiguration.SettingID); $null when CIM does not say. Not verified on a
    # real Windows that NetworkAdapterID and SettingID are written alike ({GUID}).
    [CmdletBinding()]
    param()
    $setting = Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName 'Win32_TSNetworkAdapterSetting' -Filter "TerminalName='RDP-Tcp'" -ErrorAction SilentlyContinue
    if ($null -eq $setting -or -not $setting.NetworkAdapterID) { return $null }
    $id = [string]$setting.NetworkAdapterID
    $ipv4 = @()
    foreach ($config in @(Get-CimInstance -ClassName 'Win32_NetworkAdapterConfiguration' -ErrorAction SilentlyContinue | Where-Object -FilterScript { [string]$_.SettingID -eq $id })) {
        foreach ($a in @($config.IPAddress)) { if ([string]$a -match '^\d+\.\d+\.\d+\.\d+$') { $ipv4 += [string]$a } }
    }
    return [ordered]@{ lanaId = [int]$setting.NetworkAdapterLanaID; id = $id; name = [string]$setting.NetworkAdapterName; ipv4 = $ipv4 }
}

function Invoke-RdpPing {
    # One IPv4 echo with don't-fragment set through the system ping: ping.exe -f -l SIZE -n 1 -w MS
    # ADDRESS (SIZE is the ICMP payload: the packet is SIZE + 28 bytes). Returns the exit code and
    # the output lines; what the network does is never an error here (ping.exe says it in its output,
    # in the UI language: ConvertFrom-RdpPingOutput in diagnose.ps1 reads it). Needs no elevation.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Address,
        [Parameter(Mandatory = $true)][ValidateRange(0, 65500)][int]$Size,
        [ValidateRange(1, 60000)][int]$TimeoutMs = 1000
    )
    # Started as a process rather than with the call operator (which only Invoke-RdpNative may use,
    # and whose ValidateSet has no ping.exe): its output is read whole, and a ping that outlives its
    # own -w by 5 s is ended.
    $info = New-Object -TypeName System.Diagnostics.ProcessStartInfo
    $info.FileName = 'ping.exe'
    $info.Arguments = ('-f -l {0} -n 1 -w {1} {2}' -f $Size, $TimeoutMs, [System.Net.IPAddress]::Parse($Address).ToString())
    $info.UseShellExecute = $false
    $info.CreateNoWindow = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $process = [System.Diagnostics.Process]::Start($info)
    try {
        $stdout = $process.StandardOutput.ReadToEndAsync()
        $stderr = $process.StandardError.ReadToEndAsync()
        if (-not $process.WaitForExit($TimeoutMs + 5000)) { $process.Kill() }
        $process.WaitForExit()
        $output = @(($stdout.Result + $stderr.Result) -split '\r?\n' | Where-Object -FilterScript { $_ -ne '' })
        return [ordered]@{ exitCode = $process.ExitCode; output = $output }
    } finally {
        $process.Dispose()
    }
}

function Get-RdpRouteMtu {
    # The interface this machine sends to -Address through and its IPv4 MTU: the source address a
    # UDP socket connected to -Address gets (connecting a UDP socket sends nothing), matched to the
    # interface that holds it. $null when .NET does not say (mtu $null when the interface has no
    # IPv4 properties). Needs no elevation; the same on .NET Framework and .NET.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Address)
    $udp = New-Object -TypeName System.Net.Sockets.UdpClient -ArgumentList @([System.Net.Sockets.AddressFamily]::InterNetwork)
    try {
        $udp.Connect([System.Net.IPAddress]::Parse($Address), 3389)
        $source = $udp.Client.LocalEndPoint.Address
    } catch {
        return $null
    } finally {
        $udp.Close()
    }
    foreach ($nic in [System.Net.NetworkInformation.NetworkInterface]::GetAllNetworkInterfaces()) {
        $props = $nic.GetIPProperties()
        foreach ($u in $props.UnicastAddresses) {
            if (-not $u.Address.Equals($source)) { continue }
            $mtu = $null
            try { $mtu = [int]$props.GetIPv4Properties().Mtu } catch { $mtu = $null }
            return [ordered]@{ interface = [string]$nic.Name; mtu = $mtu; source = [string]$source }
        }
    }
    return $null
}
