# WindowsTwin.psm1: a Windows server held as data, standing in for exactly the boundary functions of
# scripts/ps/windows.ps1 (services, CIM, registry, certificate stores, ACLs and SDDL, native programs,
# scheduled tasks, events, WTS sessions, network cmdlets, identity). Everything else a generated step
# does runs for real under pwsh: its decisions, ShouldProcess gates, error handling, the backup files
# it writes (real files under the twin's ProgramData folder) and its JSON result.
#
# A twin is loaded from a recorded inspect-server result (test/fixtures/inspect-server/*.json, the
# shapes Windows PowerShell 5.1 writes) and can be changed with Set-Twin* before a run. Twin.Mocks.ps1
# points each boundary function at the Invoke-Twin* function of the same name here (Pester's Mock).
# Get-TwinState returns the whole state as one JSON-comparable object, so a test compares "before" and
# "after undo" for equality. Faults (Set-TwinFault) make a boundary call fail the way Windows does.
Set-StrictMode -Version Latest

$script:Twin = $null
$script:Fixtures = Join-Path -Path $PSScriptRoot -ChildPath '../fixtures/inspect-server'
$script:SidAlias = [ordered]@{
    SY = 'S-1-5-18'; BA = 'S-1-5-32-544'; NS = 'S-1-5-20'; LS = 'S-1-5-19'; WD = 'S-1-1-0'; AU = 'S-1-5-11'
    BU = 'S-1-5-32-545'; CO = 'S-1-3-0'; IU = 'S-1-5-4'; SU = 'S-1-5-6'; NU = 'S-1-5-2'; AN = 'S-1-5-7'
}
$script:RightAlias = [ordered]@{ FA = 0x1f01ff; FR = 0x120089; FW = 0x120116; FX = 0x1200a0; GA = 0x10000000; GR = -2147483648; GW = 0x40000000; GX = 0x20000000 }
$script:AceType = @{ A = 'AccessAllowed'; D = 'AccessDenied'; AU = 'SystemAudit'; OA = 'AccessAllowedObject'; OD = 'AccessDeniedObject' }
$script:ContainerPrefix = 'f686aace6942fb7f7ceb231212eef4a4_'
$script:SessionEnvSid = 'S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833'
$script:ProgramDataSddl = 'O:SYG:SYD:PAI(A;OICIIO;GA;;;CO)(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)(A;CI;0x116;;;BU)'

# ------------------------------------------------------------------ SDDL (what Windows parses for us)

function ConvertFrom-TwinSddl {
    # O:, G:, D: (flags and ACEs) of an SDDL string; SIDs and rights normalised (aliases resolved).
    param([Parameter(Mandatory = $true)][string]$Sddl)
    $m = [regex]::Match($Sddl, '^(?:O:(?<o>[A-Z]{2}|S-[0-9-]+))?(?:G:(?<g>[A-Z]{2}|S-[0-9-]+))?(?:D:(?<df>[A-Z]*)(?<d>(?:\([^)]*\))*))?(?:S:.*)?$')
    if (-not $m.Success) { throw ('The SDDL form of a security descriptor object is invalid: {0}' -f $Sddl) }
    $sid = { param($s) if ($script:SidAlias.Contains($s)) { $script:SidAlias[$s] } else { $s } }
    $aces = @()
    foreach ($a in [regex]::Matches($m.Groups['d'].Value, '\(([^)]*)\)')) {
        $f = $a.Groups[1].Value.Split(';')
        if ($f.Count -lt 6) { throw ('The SDDL form of a security descriptor object is invalid: {0}' -f $Sddl) }
        $rights = $f[2]
        if ($rights -match '^0x[0-9a-fA-F]+$') { $mask = [int][Convert]::ToInt64($rights, 16) }
        else {
            $mask = 0
            for ($i = 0; $i -lt $rights.Length; $i += 2) {
                $r = $rights.Substring($i, 2)
                if (-not $script:RightAlias.Contains($r)) { throw ('unknown right {0} in {1}' -f $r, $Sddl) }
                $mask = $mask -bor $script:RightAlias[$r]
            }
        }
        $aces += [pscustomobject]@{ type = $f[0]; flags = $f[1]; mask = [int]$mask; sid = (& $sid $f[5]) }
    }
    $owner = $null; if ($m.Groups['o'].Success) { $owner = & $sid $m.Groups['o'].Value }
    $group = $null; if ($m.Groups['g'].Success) { $group = & $sid $m.Groups['g'].Value }
    return [pscustomobject]@{ owner = $owner; group = $group; daclPresent = $m.Groups['df'].Success -or $m.Groups['d'].Value -ne ''; daclFlags = $m.Groups['df'].Value; aces = $aces }
}

function ConvertTo-TwinSddl {
    # Render in Windows' canonical way: well-known SIDs and exact rights as aliases, other masks as hex.
    param([Parameter(Mandatory = $true)]$Descriptor, [switch]$NoGroup)
    $alias = { param($s) foreach ($k in $script:SidAlias.Keys) { if ($script:SidAlias[$k] -eq $s) { return $k } }; return $s }
    $text = ''
    if ($Descriptor.owner) { $text += 'O:' + (& $alias $Descriptor.owner) }
    if ($Descriptor.group -and -not $NoGroup) { $text += 'G:' + (& $alias $Descriptor.group) }
    if ($Descriptor.daclPresent) {
        $text += 'D:' + $Descriptor.daclFlags
        foreach ($a in @($Descriptor.aces)) {
            $rights = '0x{0:x}' -f $a.mask
            foreach ($k in @('FA', 'FR', 'FW', 'FX')) { if ($script:RightAlias[$k] -eq $a.mask) { $rights = $k } }
            $text += '({0};{1};{2};;;{3})' -f $a.type, $a.flags, $rights, (& $alias $a.sid)
        }
    }
    return $text
}

# ------------------------------------------------------------------ state

function Get-TwinDefaultContainerSddl {
    param([int]$Build)
    if ($Build -le 14393) { return 'O:SYG:SYD:(A;;FA;;;SY)(A;;0x120089;;;NS)(A;;0x120089;;;BA)' }
    if ($Build -ge 17763) { return ('O:SYG:SYD:(A;;FA;;;SY)(A;;0x120089;;;NS)(A;;FA;;;{0})' -f $script:SessionEnvSid) }
    return ('O:SYG:SYD:(A;;FA;;;SY)(A;;0x120089;;;NS)(A;;0x120089;;;BA)(A;;FA;;;{0})' -f $script:SessionEnvSid)
}

function ConvertFrom-TwinJsonDate {
    param($Value)
    if ($Value -is [datetime]) { return $Value.ToUniversalTime() }
    $m = [regex]::Match([string]$Value, '^/Date\((-?\d+)\)/$')
    if ($m.Success) { return [DateTimeOffset]::FromUnixTimeMilliseconds([long]$m.Groups[1].Value).UtcDateTime }
    return ([datetime]::Parse([string]$Value)).ToUniversalTime()
}

function Get-TwinKeyPath { param([string]$Path) return ($Path -replace '^HKLM:\\', 'HKLM\').TrimEnd('\').ToLowerInvariant() }

function Reset-WindowsTwin {
    # A fresh twin from a recorded inspect-server result. -Root is a folder the test owns (TestDrive):
    # the twin's C:\ProgramData lives there and $env:ProgramData points at it.
    param(
        [Parameter(Mandatory = $true)][string]$Root,
        [string]$Fixture = 'healthy-2019',
        [switch]$NotElevated
    )
    $facts = (Get-Content -LiteralPath (Join-Path -Path $script:Fixtures -ChildPath ($Fixture + '.json')) -Raw | ConvertFrom-Json).facts
    $programData = Join-Path -Path $Root -ChildPath 'ProgramData'
    if (Test-Path -LiteralPath $programData) { Remove-Item -LiteralPath $programData -Recurse -Force }
    $machineKeys = Join-Path -Path $programData -ChildPath 'Microsoft/Crypto/RSA/MachineKeys'
    $null = New-Item -ItemType Directory -Path $machineKeys -Force
    $null = New-Item -ItemType Directory -Path (Join-Path -Path $programData -ChildPath 'Microsoft/Crypto/Keys') -Force
    $env:ProgramData = $programData
    $env:COMPUTERNAME = [string]$facts.computer
    $guid = $null
    if ($facts.certificate.key -and $facts.certificate.key.file) {
        $leaf = ($facts.certificate.key.file -split '\\')[-1]
        if ($leaf.StartsWith($script:ContainerPrefix)) { $guid = $leaf.Substring($script:ContainerPrefix.Length) }
    }
    if (-not $guid) { $guid = '3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c' }
    $script:Twin = [ordered]@{
        root = $Root; programData = $programData; machineKeys = $machineKeys
        build = [int]$facts.build; runAs = [string]$facts.runAs; elevated = -not $NotElevated; ownSession = 0
        services = [ordered]@{}; registry = [ordered]@{}; stores = [ordered]@{ 'Remote Desktop' = [ordered]@{}; 'My' = [ordered]@{} }
        acl = [ordered]@{}; unreadable = @(); events = @(); tasks = [ordered]@{}; sessions = @(); sessionError = $null
        domainJoined = $false; interfaces = @(); routes = @(); adapters = @(); faults = [ordered]@{}; calls = New-Object System.Collections.Generic.List[string]
        wmi = 'ok'; serial = 0; firewall = @($facts.firewall)
    }
    # The twin is the server as it was recorded, on the day it was recorded: its clock is the
    # fixture's facts.now (its certificates are valid then), until a test sets another one.
    if ($null -ne $facts.now) { $script:Twin['now'] = ConvertFrom-TwinJsonDate $facts.now }
    # C:\ProgramData's own ACL as Windows ships it (protected): SYSTEM and Administrators full control,
    # CREATOR OWNER full control inherit-only, BUILTIN\Users read & execute on everything below and
    # create-folder/append (0x116) on folders. What rdpfix creates under it inherits from it
    # (Get-TwinEffectiveDescriptor) unless created protected.
    Set-TwinPathSddl -Path $programData -Sddl $script:ProgramDataSddl
    foreach ($s in @($facts.services)) {
        $script:Twin.services[$s.Name] = [ordered]@{ Status = [string][System.ServiceProcess.ServiceControllerStatus][int]$s.Status; StartType = [string][System.ServiceProcess.ServiceStartMode][int]$s.StartType }
    }
    if (-not $script:Twin.services.Contains('UmRdpService')) { $script:Twin.services['UmRdpService'] = [ordered]@{ Status = 'Running'; StartType = 'Manual' } }
    $rdpTcp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
    Set-TwinRegistryKey -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' -Values ([ordered]@{ CurrentBuild = [string]$facts.build; ProductName = [string]$facts.product })
    Set-TwinRegistryKey -Path 'HKLM:\SOFTWARE\Microsoft\Cryptography' -Values ([ordered]@{ MachineGuid = $guid })
    Set-TwinRegistryKey -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server' -Values (ConvertTo-TwinValues $facts.terminalServer)
    Set-TwinRegistryKey -Path $rdpTcp -Values (ConvertTo-TwinValues $facts.rdpTcp)
    $policy = ConvertTo-TwinValues $facts.policy
    if ($policy.Count -gt 0) { Set-TwinRegistryKey -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Values $policy }
    # The certificates of the Remote Desktop store, each with its key container file.
    $keyFileSddl = $null
    if ($facts.certificate.key) { $keyFileSddl = $facts.certificate.key.sddl }
    foreach ($c in @($facts.certificate.store)) {
        $keyName = $script:ContainerPrefix + $guid
        Add-TwinCertificate -Store 'Remote Desktop' -Thumbprint $c.Thumbprint -Subject $c.Subject -Issuer $c.Issuer -NotBefore (ConvertFrom-TwinJsonDate $c.NotBefore) -NotAfter (ConvertFrom-TwinJsonDate $c.NotAfter) -HasPrivateKey ([bool]$c.HasPrivateKey) -KeyName $keyName
    }
    if ($facts.certificate.key -and -not $facts.certificate.key.opened) {
        foreach ($t in @($script:Twin.stores['Remote Desktop'].Keys)) { $script:Twin.stores['Remote Desktop'][$t].keyError = [string]$facts.certificate.key.error }
    }
    Set-TwinPathSddl -Path $machineKeys -Sddl ([string]$facts.machineKeys.sddl)
    foreach ($k in @($facts.machineKeys.containers)) {
        $file = Join-Path -Path $machineKeys -ChildPath $k.name
        [System.IO.File]::WriteAllBytes($file, [byte[]](1..64))
        if ($k.sddl) { Set-TwinPathSddl -Path $file -Sddl ([string]$k.sddl) } else { $script:Twin.unreadable += (Get-TwinFileKey $file) }
    }
    if (@($facts.machineKeys.containers).Count -eq 0 -and $keyFileSddl -and @($facts.certificate.store).Count -gt 0) {
        $file = Join-Path -Path $machineKeys -ChildPath ($script:ContainerPrefix + $guid)
        [System.IO.File]::WriteAllBytes($file, [byte[]](1..64))
        Set-TwinPathSddl -Path $file -Sddl ([string]$keyFileSddl)
    }
    $script:Twin.events = @($facts.events.newest | ForEach-Object -Process { [pscustomobject]@{ Id = [int]$_.Id; ProviderName = [string]$_.ProviderName; TimeCreated = (Get-Date); Message = [string]$_.Message } })
    $script:Twin.interfaces = @(
        [pscustomobject]@{ InterfaceAlias = 'Ethernet'; InterfaceIndex = 6; AddressFamily = 'IPv4'; NlMtu = 1500 },
        [pscustomobject]@{ InterfaceAlias = 'Ethernet'; InterfaceIndex = 6; AddressFamily = 'IPv6'; NlMtu = 1500 },
        [pscustomobject]@{ InterfaceAlias = 'Loopback Pseudo-Interface 1'; InterfaceIndex = 1; AddressFamily = 'IPv4'; NlMtu = 4294967295 }
    )
    $script:Twin.adapters = @([pscustomobject]@{ InterfaceIndex = 6; InterfaceDescription = 'Intel(R) Ethernet Connection I219-LM' })
    $script:Twin.routes = @([pscustomobject]@{ InterfaceAlias = 'Ethernet'; InterfaceIndex = 6; IPAddress = '192.0.2.10'; NextHop = '192.0.2.1'; DestinationPrefix = '0.0.0.0/0' })
}

function ConvertTo-TwinValues {
    # JSON-read registry values as the twin stores them: DWORD numbers, byte arrays as Binary, strings.
    param($Object)
    $values = [ordered]@{}
    if ($null -eq $Object) { return $values }
    foreach ($p in $Object.PSObject.Properties) { $values[$p.Name] = $p.Value }
    return $values
}

function Set-TwinRegistryKey {
    # Create the key (and its parents) with these values: DWord for integers, Binary for arrays, String otherwise.
    param([Parameter(Mandatory = $true)][string]$Path, [System.Collections.IDictionary]$Values = @{})
    $parts = (Get-TwinKeyPath $Path).Split('\')
    for ($i = 2; $i -le $parts.Count; $i++) {
        $k = ($parts[0..($i - 1)] -join '\')
        if (-not $script:Twin.registry.Contains($k)) { $script:Twin.registry[$k] = [ordered]@{} }
    }
    $key = $script:Twin.registry[(Get-TwinKeyPath $Path)]
    foreach ($n in $Values.Keys) {
        $v = $Values[$n]
        if ($null -eq $v) { if ($key.Contains($n)) { $key.Remove($n) }; continue }
        if ($v -is [array]) { $key[$n] = [ordered]@{ type = 'Binary'; value = [byte[]]@($v | ForEach-Object -Process { [byte]$_ }) } }
        elseif ($v -is [string]) { $key[$n] = [ordered]@{ type = 'String'; value = $v } }
        else { $key[$n] = [ordered]@{ type = 'DWord'; value = [int]$v } }
    }
}

function Remove-TwinRegistryKey {
    param([Parameter(Mandatory = $true)][string]$Path)
    $k = Get-TwinKeyPath $Path
    foreach ($name in @($script:Twin.registry.Keys)) { if ($name -eq $k -or $name.StartsWith($k + '\')) { $script:Twin.registry.Remove($name) } }
}

function Add-TwinCertificate {
    param(
        [ValidateSet('Remote Desktop', 'My')][string]$Store = 'Remote Desktop',
        [Parameter(Mandatory = $true)][string]$Thumbprint,
        [string]$Subject = 'CN=web-01', [string]$Issuer = $Subject,
        [datetime]$NotBefore = (Get-Date).AddDays(-30), [datetime]$NotAfter = (Get-Date).AddDays(150),
        [bool]$HasPrivateKey = $true, [string]$KeyName = $null, [string]$KeyProvider = 'csp', [string]$KeyError = $null
    )
    $script:Twin.stores[$Store][$Thumbprint.ToUpperInvariant()] = [ordered]@{
        Thumbprint = $Thumbprint.ToUpperInvariant(); Subject = $Subject; Issuer = $Issuer; NotBefore = $NotBefore.ToUniversalTime(); NotAfter = $NotAfter.ToUniversalTime()
        HasPrivateKey = $HasPrivateKey; keyName = $KeyName; keyProvider = $KeyProvider; keyError = $KeyError
    }
}

function Get-TwinFileKey {
    # The ACL map's key of a path: the full path, / separators, case-insensitive like NTFS.
    param([Parameter(Mandatory = $true)][string]$Path)
    # C:\... through the test's C: drive, if it made one (as Windows would take it).
    try { $Path = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path) } catch { $null = $_ }
    return ([System.IO.Path]::GetFullPath(($Path -replace '\\', '/'))).TrimEnd('/').ToLowerInvariant()
}

function Set-TwinPathSddl {
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][string]$Sddl)
    $script:Twin.acl[(Get-TwinFileKey $Path)] = ConvertTo-TwinSddl -Descriptor (ConvertFrom-TwinSddl -Sddl $Sddl)
}

function Set-TwinUnreadable {
    # This account cannot read the path's descriptor (the hardened-key case: Administrators not in the DACL).
    param([Parameter(Mandatory = $true)][string]$Path)
    $script:Twin.unreadable += (Get-TwinFileKey $Path)
}

function Set-TwinFault {
    # Name one way a boundary call fails: ServiceWontStop, ServiceWontStart, RegistryWriteThrows,
    # IcaclsFails, RegExportFails, CertNotRegenerated, WmiRefuses, WmiThrows, NetshFails, TaskNotRegistered.
    param([Parameter(Mandatory = $true)][string]$Name, $Value = $true)
    $script:Twin.faults[$Name] = $Value
}

function Set-TwinValue {
    # Set any top-level twin field (runAs, build, elevated, domainJoined, sessions, sessionError, ...).
    param([Parameter(Mandatory = $true)][string]$Name, $Value)
    $script:Twin[$Name] = $Value
}

function Get-TwinCalls { return @($script:Twin.calls) }
function Get-TwinMachineKeys { return $script:Twin.machineKeys }
function Get-TwinService { param([string]$Name) return $script:Twin.services[$Name] }
function Get-TwinCertificates { param([string]$Store = 'Remote Desktop') return @($script:Twin.stores[$Store].Values) }
function Get-TwinRegistryValue {
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][string]$Name)
    $k = Get-TwinKeyPath $Path
    if (-not $script:Twin.registry.Contains($k) -or -not $script:Twin.registry[$k].Contains($Name)) { return $null }
    return $script:Twin.registry[$k][$Name].value
}
function Get-TwinTask { param([string]$Name) if ($script:Twin.tasks.Contains($Name)) { return $script:Twin.tasks[$Name] }; return $null }

function Get-TwinState {
    # Everything a step may change, as plain data: services, registry, certificate stores, the ACLs of
    # the files that exist, the files under ProgramData\Microsoft\Crypto (names), tasks, interfaces.
    $items = @(Get-ChildItem -LiteralPath (Join-Path -Path $script:Twin.programData -ChildPath 'Microsoft') -Recurse -Force -ErrorAction SilentlyContinue)
    $files = @($items | ForEach-Object -Process { $_.FullName.Substring($script:Twin.programData.Length) } | Sort-Object)
    # The ACL map's keys are lower-cased (NTFS is case-insensitive); on a case-sensitive file system
    # Test-Path on them misses every file under a TestDrive like /tmp/Pester_x, so match the listing.
    $existing = @{}
    foreach ($item in $items) { $existing[(Get-TwinFileKey $item.FullName)] = $true }
    $acl = [ordered]@{}
    foreach ($k in @($script:Twin.acl.Keys | Sort-Object)) { if ($existing.ContainsKey($k)) { $acl[$k.Substring($script:Twin.programData.Length)] = $script:Twin.acl[$k] } }
    $certs = [ordered]@{}
    foreach ($s in $script:Twin.stores.Keys) { $certs[$s] = @($script:Twin.stores[$s].Keys | Sort-Object) }
    $registry = [ordered]@{}
    foreach ($k in @($script:Twin.registry.Keys | Sort-Object)) {
        $values = [ordered]@{}
        foreach ($n in @($script:Twin.registry[$k].Keys | Sort-Object)) { $v = $script:Twin.registry[$k][$n]; $values[$n] = ('{0}:{1}' -f $v.type, (@($v.value) -join ',')) }
        $registry[$k] = $values
    }
    $services = [ordered]@{}
    foreach ($n in @($script:Twin.services.Keys | Sort-Object)) { $services[$n] = $script:Twin.services[$n].Status }
    return [ordered]@{
        services = $services; registry = $registry; certificates = $certs; acl = $acl; files = $files
        tasks = @($script:Twin.tasks.Keys | Sort-Object); mtu = @($script:Twin.interfaces | ForEach-Object -Process { '{0}/{1}={2}' -f $_.InterfaceIndex, $_.AddressFamily, $_.NlMtu })
    }
}

function Get-TwinStateJson { return (Get-TwinState | ConvertTo-Json -Depth 8 -Compress) }

function Add-TwinCall { param([string]$Text) $script:Twin.calls.Add($Text) }

function Test-TwinFault { param([string]$Name) return ($script:Twin.faults.Contains($Name) -and $script:Twin.faults[$Name]) }

# ------------------------------------------------------------------ the boundary, as the twin answers it

function Invoke-TwinAssertRdpHost {
    param([switch]$Elevated)
    if ($Elevated -and -not $script:Twin.elevated) {
        throw 'this step needs Administrator rights: run it in an elevated PowerShell (Run as administrator), over WinRM/SSH as an administrator, or through Azure Run Command (SYSTEM); nothing was changed'
    }
}

function Invoke-TwinGetRdpRunAs { return $script:Twin.runAs }

function Invoke-TwinConvertToRdpAccountSid {
    param([string]$Domain, [string]$Name)
    if ($Domain -eq 'NT SERVICE' -and $Name -eq 'SessionEnv') { return $script:SessionEnvSid }
    return $null
}

function Invoke-TwinTestRdpRegistryKey { param([string]$Path) return $script:Twin.registry.Contains((Get-TwinKeyPath $Path)) }

function Invoke-TwinGetRdpRegistryValue {
    param([string]$Path, [string[]]$Name)
    $values = [ordered]@{}
    $k = Get-TwinKeyPath $Path
    if (-not $script:Twin.registry.Contains($k)) { return $values }
    foreach ($n in $Name) { if ($script:Twin.registry[$k].Contains($n)) { $values[$n] = $script:Twin.registry[$k][$n].value } }
    return $values
}

function Invoke-TwinNewRdpRegistryKey {
    param([string]$Path)
    if (Test-TwinFault 'RegistryWriteThrows') { throw ('Requested registry access is not allowed. ({0})' -f $Path) }
    Add-TwinCall ('New-RdpRegistryKey {0}' -f $Path)
    Set-TwinRegistryKey -Path $Path
}

function Invoke-TwinSetRdpRegistryValue {
    param([string]$Path, [string]$Name, [string]$Type, $Value)
    if (Test-TwinFault 'RegistryWriteThrows') { throw ('Requested registry access is not allowed. ({0}\{1})' -f $Path, $Name) }
    $k = Get-TwinKeyPath $Path
    if (-not $script:Twin.registry.Contains($k)) { throw ('Cannot find path ''{0}'' because it does not exist.' -f $Path) }
    Add-TwinCall ('Set-RdpRegistryValue {0} {1}={2}' -f $Path, $Name, (@($Value) -join ','))
    if ($Type -eq 'Binary') { $script:Twin.registry[$k][$Name] = [ordered]@{ type = 'Binary'; value = [byte[]]@($Value) } }
    else { $script:Twin.registry[$k][$Name] = [ordered]@{ type = 'DWord'; value = [int]$Value } }
}

function Invoke-TwinRemoveRdpRegistryValue {
    param([string]$Path, [string]$Name)
    if (Test-TwinFault 'RegistryWriteThrows') { throw ('Requested registry access is not allowed. ({0}\{1})' -f $Path, $Name) }
    $k = Get-TwinKeyPath $Path
    if (-not $script:Twin.registry.Contains($k) -or -not $script:Twin.registry[$k].Contains($Name)) {
        throw ('Property {0} does not exist at path {1}.' -f $Name, $Path)
    }
    Add-TwinCall ('Remove-RdpRegistryValue {0} {1}' -f $Path, $Name)
    $script:Twin.registry[$k].Remove($Name)
}

function Invoke-TwinGetRdpWinService {
    param([string[]]$Name)
    return @(foreach ($n in $Name) {
        if ($script:Twin.services.Contains($n)) {
            [pscustomobject]@{ Name = $n; Status = [System.ServiceProcess.ServiceControllerStatus]$script:Twin.services[$n].Status; StartType = [System.ServiceProcess.ServiceStartMode]$script:Twin.services[$n].StartType }
        }
    })
}

function Invoke-TwinGetRdpServiceProcessId {
    param([string]$Name)
    if ($script:Twin.services.Contains($Name) -and $script:Twin.services[$Name].Status -eq 'Running') { return 1084 }
    return $null
}

function Start-TwinTermService {
    # What TermService does when it starts: use the pinned certificate, or the newest in the Remote
    # Desktop store, or create a self-signed one, whose key container must be writable (an unreadable
    # old container of the same name makes the creation fail, the classic 0x904/0x7 case).
    $pin = Get-TwinRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'SSLCertificateSHA1Hash'
    if ($null -ne $pin) { return }
    if ($script:Twin.stores['Remote Desktop'].Count -gt 0) { return }
    if (Test-TwinFault 'CertNotRegenerated') { return }
    $guid = Get-TwinRegistryValue -Path 'HKLM:\SOFTWARE\Microsoft\Cryptography' -Name 'MachineGuid'
    $name = $script:ContainerPrefix + $guid
    $file = Join-Path -Path $script:Twin.machineKeys -ChildPath $name
    if (Test-Path -LiteralPath $file) {
        $fk = Get-TwinFileKey $file
        $sddl = $null; if ($script:Twin.acl.Contains($fk)) { $sddl = $script:Twin.acl[$fk] }
        $ok = $false
        if ($sddl -and $script:Twin.unreadable -notcontains $fk) {
            $d = ConvertFrom-TwinSddl -Sddl $sddl
            $ok = @($d.aces | Where-Object -FilterScript { $_.type -eq 'A' -and $_.sid -eq 'S-1-5-20' -and ($_.mask -band 0x120089) -eq 0x120089 }).Count -gt 0 -and
                @($d.aces | Where-Object -FilterScript { $_.type -eq 'D' -and $_.sid -eq 'S-1-5-20' }).Count -eq 0
        }
        if (-not $ok) { $script:Twin.events += [pscustomobject]@{ Id = 1057; ProviderName = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'; TimeCreated = (Get-Date); Message = 'The RD Session Host Server has failed to create a new self signed certificate. Status code: Access is denied.' }; return }
    } else {
        [System.IO.File]::WriteAllBytes($file, [byte[]](65..128))
    }
    # Stored in the canonical form Set-TwinPathSddl and Windows render (0x120089 is FR).
    $script:Twin.acl[(Get-TwinFileKey $file)] = ConvertTo-TwinSddl -Descriptor (ConvertFrom-TwinSddl -Sddl (Get-TwinDefaultContainerSddl -Build $script:Twin.build))
    $script:Twin.unreadable = @($script:Twin.unreadable | Where-Object -FilterScript { $_ -ne (Get-TwinFileKey $file) })
    $script:Twin.serial++
    $thumb = ('{0:X8}' -f $script:Twin.serial) + 'C0FFEE00000000000000000000000000'
    Add-TwinCertificate -Store 'Remote Desktop' -Thumbprint $thumb -Subject ('CN=' + $env:COMPUTERNAME.ToLowerInvariant()) -NotBefore (Get-TwinNow) -NotAfter (Get-TwinNow).AddDays(180) -KeyName $name
    Add-TwinCall ('TermService created certificate {0}' -f $thumb)
}

function Invoke-TwinRestartRdpWinService {
    param([string]$Name)
    Add-TwinCall ('Restart-RdpWinService {0}' -f $Name)
    if (-not $script:Twin.services.Contains($Name)) { throw ('Cannot find any service with service name ''{0}''.' -f $Name) }
    if (Test-TwinFault 'ServiceWontStop') { throw ('Service ''Remote Desktop Services ({0})'' cannot be stopped due to the following error: Cannot stop {0} service on computer ''.''.' -f $Name) }
    if ($Name -eq 'TermService' -and $script:Twin.services.Contains('UmRdpService')) { $script:Twin.services['UmRdpService'].Status = 'Stopped' }
    if (Test-TwinFault 'ServiceWontStart') {
        $script:Twin.services[$Name].Status = 'Stopped'
        throw ('Failed to start service ''Remote Desktop Services ({0})''.' -f $Name)
    }
    $script:Twin.services[$Name].Status = 'Running'
    # ListenerHung = 'until-restart': a listener that a restart of TermService brings back (the
    # listener-hung recipe's case); any other value hangs again after the restart ([string]: $true
    # -eq 'until-restart' is $true in PowerShell, which converts the right side to the left's type).
    if ($Name -eq 'TermService' -and $script:Twin.faults.Contains('ListenerHung') -and [string]$script:Twin.faults['ListenerHung'] -eq 'until-restart') { $script:Twin.faults.Remove('ListenerHung') }
    if ($Name -eq 'TermService') { Send-TwinTermService -Command 'restart' }
    if ($Name -eq 'TermService') { Start-TwinTermService }
}

function Invoke-TwinStartRdpWinService {
    param([string]$Name)
    Add-TwinCall ('Start-RdpWinService {0}' -f $Name)
    if (-not $script:Twin.services.Contains($Name)) { throw ('Cannot find any service with service name ''{0}''.' -f $Name) }
    $script:Twin.services[$Name].Status = 'Running'
    if ($Name -eq 'TermService') { Start-TwinTermService; Send-TwinTermService -Command 'start' }
}

function Send-TwinTermService {
    # A lab whose TermService is real (test/lab/termservice.ts, a listener in front of a real RDP
    # server): $env:RDPFIX_TWIN_TERMSERVICE names its control socket, and what the twin's TermService
    # does (start, restart) is sent to it; the call returns once the listener says the new state is
    # in force, as Restart-Service returns once the service runs. Without it, nothing is sent.
    param([Parameter(Mandatory = $true)][string]$Command)
    $path = $env:RDPFIX_TWIN_TERMSERVICE
    if (-not $path) { return }
    Add-TwinCall ('lab TermService {0}' -f $Command)
    $socket = New-Object System.Net.Sockets.Socket -ArgumentList ([System.Net.Sockets.AddressFamily]::Unix), ([System.Net.Sockets.SocketType]::Stream), ([System.Net.Sockets.ProtocolType]::Unspecified)
    try {
        $socket.ReceiveTimeout = 10000
        $socket.Connect((New-Object System.Net.Sockets.UnixDomainSocketEndPoint -ArgumentList $path))
        $null = $socket.Send([System.Text.Encoding]::ASCII.GetBytes($Command + "`n"))
        $buffer = New-Object byte[] 256
        $answer = ''
        while (-not $answer.Contains("`n")) {
            $n = $socket.Receive($buffer)
            if ($n -le 0) { break }
            $answer += [System.Text.Encoding]::ASCII.GetString($buffer, 0, $n)
        }
    } finally {
        $socket.Dispose()
    }
    if (-not $answer.StartsWith('ok ')) { throw ('the lab TermService did not {0}: {1}' -f $Command, $answer.Trim()) }
}

function Invoke-TwinWaitRdpWinService {
    param([string]$Name, [string]$Status = 'Running', [int]$TimeoutSeconds = 60)
    if (-not $script:Twin.services.Contains($Name) -or $script:Twin.services[$Name].Status -ne $Status) { throw 'Time out has expired and the operation has not been completed.' }
}

function Invoke-TwinGetRdpListener {
    param([int]$Port)
    $rdpPort = Get-TwinRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'PortNumber'
    if ($null -eq $rdpPort) { $rdpPort = 3389 }
    if ($Port -ne $rdpPort -or $script:Twin.services['TermService'].Status -ne 'Running' -or (Test-TwinFault 'NoListener')) { return @() }
    $hasCert = ($script:Twin.stores['Remote Desktop'].Count -gt 0) -or ($null -ne (Get-TwinRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'SSLCertificateSHA1Hash'))
    if (-not $hasCert) { return @() }
    return @([pscustomobject]@{ LocalAddress = '0.0.0.0'; LocalPort = $Port; OwningProcess = 1084 })
}

function Invoke-TwinGetRdpFirewallRule { param([string]$Group) return @($script:Twin.firewall) }

function Invoke-TwinInvokeRdpTsSetting {
    param([string]$MethodName, [string]$ArgumentName, [uint32]$Value)
    if (Test-TwinFault 'WmiThrows') { throw 'Invalid namespace' }
    Add-TwinCall ('Invoke-RdpTsSetting {0} {1}' -f $MethodName, $Value)
    if (Test-TwinFault 'WmiRefuses') { return 2 }
    $names = @{ SetUserAuthenticationRequired = 'UserAuthentication'; SetSecurityLayer = 'SecurityLayer'; SetEncryptionLevel = 'MinEncryptionLevel' }
    if (Test-TwinFault 'RegistryWriteThrows') { throw 'Access denied' }
    Set-TwinRegistryKey -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Values ([ordered]@{ $names[$MethodName] = [int]$Value })
    return 0
}

function Invoke-TwinGetRdpDomainJoined { return [bool]$script:Twin.domainJoined }

function Invoke-TwinTestRdpCertificateStore { param([string]$Store) return ($script:Twin.stores[$Store].Count -gt 0) }

function ConvertTo-TwinCertificate {
    param($Entry)
    return [pscustomobject]@{ Thumbprint = $Entry.Thumbprint; Subject = $Entry.Subject; Issuer = $Entry.Issuer; NotBefore = $Entry.NotBefore.ToLocalTime(); NotAfter = $Entry.NotAfter.ToLocalTime(); HasPrivateKey = $Entry.HasPrivateKey }
}

function Invoke-TwinGetRdpStoreCertificate {
    param([string]$Store, [string]$Thumbprint = '')
    $entries = $script:Twin.stores[$Store]
    if ($Thumbprint) {
        if ($entries.Contains($Thumbprint.ToUpperInvariant())) { return @(ConvertTo-TwinCertificate $entries[$Thumbprint.ToUpperInvariant()]) }
        return @()
    }
    return @($entries.Values | ForEach-Object -Process { ConvertTo-TwinCertificate $_ })
}

function Invoke-TwinRemoveRdpStoreCertificate {
    param([string]$Store, [string]$Thumbprint)
    Add-TwinCall ('Remove-RdpStoreCertificate {0} {1}' -f $Store, $Thumbprint)
    if (-not $script:Twin.stores[$Store].Contains($Thumbprint)) { throw ('Cannot find path ''Cert:\LocalMachine\{0}\{1}'' because it does not exist.' -f $Store, $Thumbprint) }
    $script:Twin.stores[$Store].Remove($Thumbprint)
}

function Invoke-TwinExportRdpCertificate {
    param($Certificate, [string]$FilePath)
    Add-TwinCall ('Export-RdpCertificate {0}' -f $Certificate.Thumbprint)
    Add-TwinWrite -Path $FilePath
    [System.IO.File]::WriteAllText($FilePath, ('-----TWIN CERT {0}-----' -f $Certificate.Thumbprint))
}

function Invoke-TwinGetRdpCertificateKey {
    param($Certificate)
    $entry = $null
    foreach ($s in $script:Twin.stores.Keys) { if ($script:Twin.stores[$s].Contains($Certificate.Thumbprint)) { $entry = $script:Twin.stores[$s][$Certificate.Thumbprint] } }
    $info = [ordered]@{ opened = $false; provider = $null; name = $null; error = $null }
    if ($null -eq $entry -or -not $entry.HasPrivateKey) { return $info }
    if ($entry.keyError) { $info.error = $entry.keyError; return $info }
    $folder = $script:Twin.machineKeys
    if ($entry.keyProvider -eq 'cng') { $folder = Join-Path -Path $script:Twin.programData -ChildPath 'Microsoft/Crypto/Keys' }
    $file = Join-Path -Path $folder -ChildPath $entry.keyName
    if (-not (Test-Path -LiteralPath $file)) { $info.error = 'Keyset does not exist'; return $info }
    if ($script:Twin.runAs -eq 'S-1-5-18') {
        $fk = Get-TwinFileKey $file
        if ($script:Twin.unreadable -contains $fk -or -not $script:Twin.acl.Contains($fk) -or
            @((ConvertFrom-TwinSddl -Sddl $script:Twin.acl[$fk]).aces | Where-Object -FilterScript { $_.type -eq 'A' -and $_.sid -eq 'S-1-5-18' }).Count -eq 0) {
            $info.error = 'Keyset does not exist'
            return $info
        }
    }
    $info.opened = $true
    $info.provider = $entry.keyProvider
    $info.name = $entry.keyName
    return $info
}

function Get-TwinEffectiveDescriptor {
    # The descriptor a path has: its own entry in the ACL map, or else what NTFS gave it when it was
    # created in its folder: the folder's OI entries for a file, its CI entries for a folder (an OI-only
    # one inherit-only, to pass on to files), each marked ID, NP ending the propagation; CREATOR OWNER
    # becomes the owner (Administrators) on the object and stays inherit-only on a folder. A folder's
    # protected DACL is its own entry, so nothing above it reaches below it. Outside the twin's
    # ProgramData (the test's own files) a path gets SYSTEM and Administrators.
    param([Parameter(Mandatory = $true)][string]$Path)
    $k = Get-TwinFileKey $Path
    if ($script:Twin.acl.Contains($k)) { return (ConvertFrom-TwinSddl -Sddl $script:Twin.acl[$k]) }
    $top = Get-TwinFileKey $script:Twin.programData
    $parentPath = Split-Path -Path $Path -Parent
    if (-not $k.StartsWith($top + '/') -or -not $parentPath) { return (ConvertFrom-TwinSddl -Sddl 'O:BAG:SYD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)') }
    $parent = Get-TwinEffectiveDescriptor -Path $parentPath
    $folder = Test-Path -LiteralPath $Path -PathType Container
    $owner = 'S-1-5-32-544'
    $aces = @()
    foreach ($a in @($parent.aces)) {
        $oi = $a.flags.Contains('OI'); $ci = $a.flags.Contains('CI'); $np = $a.flags.Contains('NP')
        $creator = ($a.sid -eq 'S-1-3-0')
        $mask = $a.mask
        if ($creator -and $mask -eq 0x10000000) { $mask = 0x1f01ff }
        $sid = $a.sid; if ($creator) { $sid = $owner }
        if ($folder) {
            if ($ci) {
                $flags = 'ID'
                if (-not $np -and -not $creator) { $flags = 'CIID'; if ($oi) { $flags = 'OICIID' } }
                $aces += [pscustomobject]@{ type = $a.type; flags = $flags; mask = $mask; sid = $sid }
                if (-not $np -and $creator) { $aces += [pscustomobject]@{ type = $a.type; flags = ($a.flags -replace 'ID', '') + 'ID'; mask = $a.mask; sid = $a.sid } }
            } elseif ($oi -and -not $np) {
                $aces += [pscustomobject]@{ type = $a.type; flags = 'OIIOID'; mask = $a.mask; sid = $a.sid }
            }
        } elseif ($oi) {
            $aces += [pscustomobject]@{ type = $a.type; flags = 'ID'; mask = $mask; sid = $sid }
        }
    }
    return [pscustomobject]@{ owner = $owner; group = 'S-1-5-18'; daclPresent = $true; daclFlags = 'AI'; aces = $aces }
}

function Invoke-TwinGetRdpPathSddl {
    param([string]$Path, [switch]$Directory)
    if (-not (Test-Path -LiteralPath $Path)) { return $null }
    $k = Get-TwinFileKey $Path
    if ($script:Twin.unreadable -contains $k) { return $null }
    if ($script:Twin.acl.Contains($k)) { return $script:Twin.acl[$k] }
    # A path rdpfix did not set an ACL on has what it inherited when it was created.
    return (ConvertTo-TwinSddl -Descriptor (Get-TwinEffectiveDescriptor -Path $Path))
}

function Invoke-TwinNewRdpProtectedDirectory {
    # CreateDirectory with a descriptor: the folder exists with its protected DACL from its first moment
    # (owner Administrators, SYSTEM and Administrators full control, inherited by what is made in it).
    param([string]$Path)
    if (Test-Path -LiteralPath $Path) { throw ('{0} already exists: a protected folder is only created new' -f $Path) }
    # The path as Windows would take it (C:\... through the test's C: drive, if it made one).
    $Path = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    $parent = Split-Path -Path $Path -Parent
    if (-not (Test-Path -LiteralPath $parent -PathType Container)) { throw ('Could not find a part of the path ''{0}''.' -f $Path) }
    if (Test-TwinFault 'ProtectedDirectoryFails') { throw ('Access to the path ''{0}'' is denied.' -f $Path) }
    Add-TwinCall ('New-RdpProtectedDirectory {0}' -f $Path)
    $null = [System.IO.Directory]::CreateDirectory($Path)
    Set-TwinPathSddl -Path $Path -Sddl 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
}

function Add-TwinWrite {
    # A file is written (reg export, icacls /save, a certificate export, a copy, Set-Content): the call log
    # gets "write <path> into <folder SDDL at that moment>", so a test proves no backup file was written
    # before its folder was protected.
    param([Parameter(Mandatory = $true)][string]$Path)
    $folder = Split-Path -Path $Path -Parent
    $sddl = '(no folder)'
    if ($folder -and (Test-Path -LiteralPath $folder -PathType Container)) { $sddl = Invoke-TwinGetRdpPathSddl -Path $folder -Directory }
    Add-TwinCall ('write {0} into {1}' -f $Path, $sddl)
}

function Invoke-TwinSetRdpPathSddl {
    param([string]$Path, [string]$Sddl, [switch]$Directory)
    if (-not (Test-Path -LiteralPath $Path)) { throw ('Could not find file ''{0}''.' -f $Path) }
    Add-TwinCall ('Set-RdpPathSddl {0}' -f $Path)
    $k = Get-TwinFileKey $Path
    $old = $null
    if ($script:Twin.acl.Contains($k)) { $old = ConvertFrom-TwinSddl -Sddl $script:Twin.acl[$k] } else { $old = ConvertFrom-TwinSddl -Sddl (Invoke-TwinGetRdpPathSddl -Path $Path) }
    $new = ConvertFrom-TwinSddl -Sddl $Sddl
    $old.daclPresent = $new.daclPresent; $old.daclFlags = $new.daclFlags; $old.aces = $new.aces
    $script:Twin.acl[$k] = ConvertTo-TwinSddl -Descriptor $old
    $script:Twin.unreadable = @($script:Twin.unreadable | Where-Object -FilterScript { $_ -ne $k })
}

function Invoke-TwinConvertFromRdpSddl {
    param([string]$Sddl)
    $d = ConvertFrom-TwinSddl -Sddl $Sddl
    $entries = @($d.aces | Where-Object -FilterScript { $_.type -eq 'A' -or $_.type -eq 'D' } | ForEach-Object -Process { [pscustomobject]@{ type = $script:AceType[$_.type]; sid = $_.sid; mask = $_.mask } })
    return [pscustomobject]@{ owner = $d.owner; daclPresent = [bool]$d.daclPresent; entries = $entries }
}

function Invoke-TwinConvertToRdpCanonicalSddl {
    param([string]$Sddl)
    return ConvertTo-TwinSddl -Descriptor (ConvertFrom-TwinSddl -Sddl $Sddl) -NoGroup
}

function Invoke-TwinInvokeRdpNative {
    # icacls, reg, robocopy and netsh as far as the steps use them. Sets $global:LASTEXITCODE like a
    # native program, and Invoke-RdpNative's contract holds: output lines back, a throw on failure.
    param([string]$FilePath, [string[]]$ArgumentList, [int]$MaxExitCode = 0)
    Add-TwinCall (('{0} {1}' -f $FilePath, ($ArgumentList -join ' ')))
    $fail = { param($code, $text) $global:LASTEXITCODE = $code; throw ('{0} {1} failed with exit code {2}: {3}' -f $FilePath, $ArgumentList[0], $code, $text) }
    $global:LASTEXITCODE = 0
    switch ($FilePath) {
        'icacls.exe' {
            # IcaclsFails = $true fails every icacls call, = '/grant:r' (a verb) only that one; a caller that
            # tolerates the exit code (-MaxExitCode, icacls /save /c) gets the output back, as from the real one.
            $icaclsFault = $script:Twin.faults['IcaclsFails']
            if ((Test-TwinFault 'IcaclsFails') -and ($icaclsFault -eq $true -or $icaclsFault -eq $ArgumentList[1])) {
                if ($MaxExitCode -ge 5) { $global:LASTEXITCODE = 5; return @('Access is denied.', 'Successfully processed 0 files; Failed processing 1 files') }
                & $fail 5 'Access is denied. Successfully processed 0 files; Failed processing 1 files'
            }
            $path = $ArgumentList[0]
            $verb = $ArgumentList[1]
            if ($verb -eq '/save') {
                $parent = Split-Path -Path $path -Parent
                $lines = New-Object System.Collections.Generic.List[string]
                $items = @(Get-Item -LiteralPath $path -Force) + @(Get-ChildItem -LiteralPath $path -Recurse -Force)
                foreach ($item in $items) {
                    $rel = $item.FullName.Substring($parent.Length).TrimStart('/')
                    $sddl = Invoke-TwinGetRdpPathSddl -Path $item.FullName
                    if (-not $sddl) { continue }
                    $lines.Add(($rel -replace '/', '\')); $lines.Add(($sddl -replace '^O:[^:]*?(?=G:|D:)', '' -replace '^G:[^:]*?(?=D:)', ''))
                }
                Add-TwinWrite -Path $ArgumentList[2]
                [System.IO.File]::WriteAllText($ArgumentList[2], (($lines -join "`r`n") + "`r`n"), [System.Text.Encoding]::Unicode)
                return @('processed')
            }
            if ($verb -eq '/restore') {
                $content = [System.IO.File]::ReadAllText($ArgumentList[2], [System.Text.Encoding]::Unicode) -split "`r`n"
                for ($i = 0; $i + 1 -lt $content.Count; $i += 2) {
                    if (-not $content[$i]) { continue }
                    $target = Join-Path -Path $path -ChildPath ($content[$i] -replace '\\', '/')
                    if (Test-Path -LiteralPath $target) { Invoke-TwinSetRdpPathSddl -Path $target -Sddl $content[$i + 1] }
                }
                return @('processed')
            }
            if (-not (Test-Path -LiteralPath $path)) { & $fail 2 ('{0}: The system cannot find the file specified.' -f $path) }
            $k = Get-TwinFileKey $path
            $d = ConvertFrom-TwinSddl -Sddl (Invoke-TwinGetRdpPathSddl -Path $path)
            $sids = @($ArgumentList[2..($ArgumentList.Count - 1)])
            if ($verb -eq '/setowner') { $d.owner = $sids[0].TrimStart('*') }
            elseif ($verb -eq '/remove:d') { $strip = @($sids | ForEach-Object -Process { $_.TrimStart('*') }); $d.aces = @($d.aces | Where-Object -FilterScript { -not ($_.type -eq 'D' -and $strip -contains $_.sid) }) }
            elseif ($verb -eq '/grant:r') {
                foreach ($g in $sids) {
                    $m = [regex]::Match($g, '^\*(?<sid>S-[0-9-]+):\((?<r>[A-Z]+)\)$')
                    if (-not $m.Success) { & $fail 87 ('Invalid parameter "{0}"' -f $g) }
                    $mask = @{ F = 0x1f01ff; R = 0x120089; RX = 0x1200a9; M = 0x1301bf }[$m.Groups['r'].Value]
                    $d.aces = @($d.aces | Where-Object -FilterScript { -not ($_.type -eq 'A' -and $_.sid -eq $m.Groups['sid'].Value -and $_.flags -notmatch 'ID') }) + @([pscustomobject]@{ type = 'A'; flags = ''; mask = $mask; sid = $m.Groups['sid'].Value })
                }
            } else { & $fail 87 ('Invalid parameter "{0}"' -f $verb) }
            $script:Twin.acl[$k] = ConvertTo-TwinSddl -Descriptor $d
            $script:Twin.unreadable = @($script:Twin.unreadable | Where-Object -FilterScript { $_ -ne $k })
            return @('processed file: ' + $path, 'Successfully processed 1 files; Failed processing 0 files')
        }
        'reg.exe' {
            $verb = $ArgumentList[0]
            if ($verb -eq 'export') {
                if (Test-TwinFault 'RegExportFails') { & $fail 1 'ERROR: Access is denied.' }
                $key = $ArgumentList[1]
                $store = [regex]::Match($key, '^HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\Remote Desktop\\Certificates\\(?<t>[0-9A-Fa-f]+)$')
                if ($store.Success) {
                    $entry = $script:Twin.stores['Remote Desktop'][$store.Groups['t'].Value.ToUpperInvariant()]
                    if ($null -eq $entry) { & $fail 1 'ERROR: The system was unable to find the specified registry key or value.' }
                    $data = [ordered]@{ kind = 'certificate'; store = 'Remote Desktop'; entry = $entry }
                } else {
                    $k = Get-TwinKeyPath $key
                    if (-not $script:Twin.registry.Contains($k)) { & $fail 1 'ERROR: The system was unable to find the specified registry key or value.' }
                    $data = [ordered]@{ kind = 'key'; path = $key; values = $script:Twin.registry[$k] }
                }
                $text = "Windows Registry Editor Version 5.00`r`n`r`n; rdpfix twin: " + ($data | ConvertTo-Json -Depth 6 -Compress) + "`r`n"
                # The path as Windows would take it (C:\... through the test's C: drive, if it made one).
                Add-TwinWrite -Path $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($ArgumentList[2])
                [System.IO.File]::WriteAllText($ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($ArgumentList[2]), $text, [System.Text.Encoding]::Unicode)
                return @('The operation completed successfully.')
            }
            if ($verb -eq 'import') {
                $file = $ArgumentList[1]
                if (-not (Test-Path -LiteralPath $file)) { & $fail 1 'ERROR: Error opening the file. There may be a disk or file system error.' }
                $line = @([System.IO.File]::ReadAllText($file, [System.Text.Encoding]::Unicode) -split "`r`n" | Where-Object -FilterScript { $_.StartsWith('; rdpfix twin: ') })
                if ($line.Count -eq 0) { & $fail 1 'ERROR: Error accessing the registry.' }
                $data = $line[0].Substring(15) | ConvertFrom-Json
                if ($data.kind -eq 'certificate') {
                    $e = $data.entry
                    Add-TwinCertificate -Store $data.store -Thumbprint $e.Thumbprint -Subject $e.Subject -Issuer $e.Issuer -NotBefore (ConvertFrom-TwinJsonDate $e.NotBefore) -NotAfter (ConvertFrom-TwinJsonDate $e.NotAfter) -HasPrivateKey ([bool]$e.HasPrivateKey) -KeyName $e.keyName -KeyProvider $e.keyProvider -KeyError $e.keyError
                } else {
                    $values = [ordered]@{}
                    foreach ($p in $data.values.PSObject.Properties) {
                        if ($p.Value.type -eq 'Binary') { $values[$p.Name] = @($p.Value.value) } elseif ($p.Value.type -eq 'String') { $values[$p.Name] = [string]$p.Value.value } else { $values[$p.Name] = [int]$p.Value.value }
                    }
                    Set-TwinRegistryKey -Path $data.path -Values $values
                }
                return @('The operation completed successfully.')
            }
            & $fail 1 ('ERROR: Invalid syntax. {0}' -f $verb)
        }
        'robocopy.exe' {
            # /COPY:DAT copies no security: the copy has what its new folder passes down.
            $copy = Join-Path -Path $ArgumentList[1] -ChildPath $ArgumentList[2]
            Add-TwinWrite -Path $copy
            Copy-Item -LiteralPath (Join-Path -Path $ArgumentList[0] -ChildPath $ArgumentList[2]) -Destination $ArgumentList[1] -Force
            Clear-TwinAcl -Path $copy
            $global:LASTEXITCODE = 1
            return @('1 file copied')
        }
        'netsh.exe' {
            if (Test-TwinFault 'NetshFails') { & $fail 1 'The requested operation requires elevation (Run as administrator).' }
            $index = [int]$ArgumentList[4]
            $mtu = [long](($ArgumentList | Where-Object -FilterScript { $_ -like 'mtu=*' }) -replace 'mtu=', '')
            $found = @($script:Twin.interfaces | Where-Object -FilterScript { $_.InterfaceIndex -eq $index -and $_.AddressFamily -eq 'IPv4' })
            if ($found.Count -eq 0) { & $fail 1 'The filename, directory name, or volume label syntax is incorrect.' }
            $found[0].NlMtu = $mtu
            return @('Ok.')
        }
    }
}

function Invoke-TwinGetRdpScheduledTask {
    param([string]$TaskName, [string]$TaskPath)
    if (-not $script:Twin.tasks.Contains($TaskName)) { return $null }
    $t = $script:Twin.tasks[$TaskName]
    return [pscustomobject]@{ State = 'Ready'; NextRunTime = $t.At.ToUniversalTime().ToString('o') }
}

function Invoke-TwinRegisterRdpScheduledTask {
    param([string]$TaskName, [string]$TaskPath, [string]$EncodedCommand, [datetime]$At, [string]$Description)
    Add-TwinCall ('Register-RdpScheduledTask {0}{1}' -f $TaskPath, $TaskName)
    if (Test-TwinFault 'TaskNotRegistered') { return }
    $script:Twin.tasks[$TaskName] = [ordered]@{ path = $TaskPath; encodedCommand = $EncodedCommand; At = $At; description = $Description }
}

function Invoke-TwinUnregisterRdpScheduledTask {
    param([string]$TaskName, [string]$TaskPath)
    Add-TwinCall ('Unregister-RdpScheduledTask {0}{1}' -f $TaskPath, $TaskName)
    if (-not $script:Twin.tasks.Contains($TaskName)) { throw ('No MSFT_ScheduledTask objects found with property ''TaskName'' equal to ''{0}''.' -f $TaskName) }
    $script:Twin.tasks.Remove($TaskName)
}

function Invoke-TwinGetRdpWinEvent {
    param([string]$ProviderName, [int[]]$Id, [datetime]$StartTime)
    return @($script:Twin.events | Where-Object -FilterScript { $_.ProviderName -eq $ProviderName -and $Id -contains $_.Id -and $_.TimeCreated -ge $StartTime })
}

function Invoke-TwinGetRdpOwnSessionId { return $script:Twin.ownSession }

function Invoke-TwinGetRdpWtsSession {
    param([int]$TimeoutSeconds = 15)
    if ($script:Twin.sessionError) { throw (New-Object System.TimeoutException -ArgumentList $script:Twin.sessionError) }
    return @($script:Twin.sessions)
}

function Invoke-TwinGetRdpNetIPInterface {
    param([string]$AddressFamily = 'IPv4', [int]$InterfaceIndex = -1)
    return @($script:Twin.interfaces | Where-Object -FilterScript { $_.AddressFamily -eq $AddressFamily -and ($InterfaceIndex -lt 0 -or $_.InterfaceIndex -eq $InterfaceIndex) })
}

function Invoke-TwinFindRdpNetRoute { param([string]$Address) return @($script:Twin.routes) }

function Invoke-TwinGetRdpNetAdapter {
    param([int]$InterfaceIndex)
    return ($script:Twin.adapters | Where-Object -FilterScript { $_.InterfaceIndex -eq $InterfaceIndex } | Select-Object -First 1)
}

# File operations keep NTFS's rule that an ACL belongs to the file: a renamed folder keeps its
# entries' descriptors, a removed file loses its own, a copy inherits its new folder's.
function Move-TwinAcl {
    param([string]$From, [string]$To)
    $f = Get-TwinFileKey $From; $t = Get-TwinFileKey $To
    foreach ($k in @($script:Twin.acl.Keys)) {
        if ($k -eq $f -or $k.StartsWith($f + '/')) { $script:Twin.acl[$t + $k.Substring($f.Length)] = $script:Twin.acl[$k]; $script:Twin.acl.Remove($k) }
    }
    $script:Twin.unreadable = @($script:Twin.unreadable | ForEach-Object -Process { if ($_ -eq $f -or $_.StartsWith($f + '/')) { $t + $_.Substring($f.Length) } else { $_ } })
}

function Clear-TwinAcl {
    param([string]$Path)
    $f = Get-TwinFileKey $Path
    foreach ($k in @($script:Twin.acl.Keys)) { if ($k -eq $f -or $k.StartsWith($f + '/')) { $script:Twin.acl.Remove($k) } }
    $script:Twin.unreadable = @($script:Twin.unreadable | Where-Object -FilterScript { -not ($_ -eq $f -or $_.StartsWith($f + '/')) })
}

Export-ModuleMember -Function *

# ------------------------------------------------------------------ a twin that outlives its process
# The lab host (test/windows/TwinHost.ps1) runs every ssh session in a new pwsh, so the twin's state
# lives in a file: saved after every call that changed it (write-through: a pwsh killed mid-step
# leaves the twin exactly as far as it got, as a real server keeps every registry write it made) and
# loaded when a session starts. CliXml (PSSerializer) keeps ordered dictionaries, datetimes, byte
# arrays and property order, which JSON would not; measured on key-unreadable-2019 (21.6 KB):
# serialize + write about 4.4 ms, read + deserialize about 4.9 ms.
# A file operation of the script (Rename/Remove/Copy-Item) changes the disk and then the ACL map, two
# steps a kill can separate where NTFS moves a file and its ACL at once: the host saves the
# operation as `pending` before it touches the disk, and Import-TwinState finishes it from what the
# disk shows (the rename or removal happened: the ACL follows; it did not: nothing to do).

function Get-TwinSerialized {
    # The whole twin and its computer name as CliXml text (what Export-TwinState writes), also to see
    # whether a call changed it.
    return [System.Management.Automation.PSSerializer]::Serialize([ordered]@{ computer = $env:COMPUTERNAME; twin = $script:Twin }, 32)
}

function Export-TwinState {
    # Write the twin to Path atomically (a temp file renamed over it: a kill leaves the old or the new
    # state, never half of one). -Text is a Get-TwinSerialized text the caller already has.
    param([Parameter(Mandatory = $true)][string]$Path, [string]$Text = '')
    if (-not $Text) { $Text = Get-TwinSerialized }
    $tmp = $Path + '.tmp'
    [System.IO.File]::WriteAllText($tmp, $Text, (New-Object System.Text.UTF8Encoding $false))
    [System.IO.File]::Move($tmp, $Path, $true)
}

function Set-TwinPending {
    # Name the file operation about to run (or $null once it is booked), for Import-TwinState.
    param($Operation)
    $script:Twin['pending'] = $Operation
}

function Import-TwinState {
    # Load a twin saved by Export-TwinState: its ProgramData and computer name become this process's.
    param([Parameter(Mandatory = $true)][string]$Path)
    $saved = [System.Management.Automation.PSSerializer]::Deserialize([System.IO.File]::ReadAllText($Path, [System.Text.Encoding]::UTF8))
    $t = $saved.twin
    # Deserialized lists come back as ArrayList, whose Add() writes its index to the pipeline: the
    # twin's own types again (calls is a List[string], the other lists plain arrays).
    $calls = New-Object System.Collections.Generic.List[string]
    foreach ($c in @($t.calls)) { $calls.Add([string]$c) }
    $t.calls = $calls
    foreach ($k in @($t.Keys)) { if ($t[$k] -is [System.Collections.ArrayList]) { $t[$k] = @($t[$k].ToArray()) } }
    $script:Twin = $t
    $env:ProgramData = $t.programData
    $env:COMPUTERNAME = [string]$saved.computer
    if ($t.Contains('pending') -and $null -ne $t.pending) {
        $op = $t.pending
        if ($op.kind -eq 'rename' -and -not (Test-Path -LiteralPath $op.from) -and (Test-Path -LiteralPath $op.to)) { Move-TwinAcl -From $op.from -To $op.to }
        elseif ($op.kind -eq 'remove') { foreach ($p in @($op.paths)) { if (-not (Test-Path -LiteralPath $p)) { Clear-TwinAcl -Path $p } } }
        elseif ($op.kind -eq 'copy' -and (Test-Path -LiteralPath $op.to)) { Clear-TwinAcl -Path $op.to }
        $script:Twin['pending'] = $null
        Export-TwinState -Path $Path
    }
}

# The Export-ModuleMember above ran before these functions existed.
Export-ModuleMember -Function *

# ------------------------------------------------------------------ the in-server handshake check
# What Test-RdpHandshake (windows.ps1) sees when the twin checks its own listener, in the evidence
# shape the real function returns, and the adapter a LanAdapter binding names. Faults: NoListener
# (nothing listens: refused), ListenerHung (TermService accepts the connection and never answers).
# The twin's clock is the fixture's facts.now (the day it was recorded: healthy-2019's certificate
# expires 2025-07-01, a month later) unless a test sets one (Set-TwinValue -Name now; $null: Get-Date).

function Get-TwinNow {
    if ($script:Twin.Contains('now') -and $null -ne $script:Twin['now']) { return ([datetime]$script:Twin['now']).ToUniversalTime() }
    return (Get-Date).ToUniversalTime()
}

function Get-TwinListenerCertificate {
    # The certificate TermService uses: the pinned thumbprint (My, then Remote Desktop), otherwise the
    # newest in the Remote Desktop store; $null when the pin names none or the store is empty.
    $pin = Get-TwinRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'SSLCertificateSHA1Hash'
    if ($null -ne $pin) {
        $thumb = (@($pin) | ForEach-Object -Process { '{0:X2}' -f [int]$_ }) -join ''
        foreach ($s in @('My', 'Remote Desktop')) { if ($script:Twin.stores[$s].Contains($thumb)) { return $script:Twin.stores[$s][$thumb] } }
        return $null
    }
    return (@($script:Twin.stores['Remote Desktop'].Values | Sort-Object -Property NotAfter -Descending) | Select-Object -First 1)
}

function Test-TwinListenerKey {
    # Can TermService (NETWORK SERVICE) use the certificate's private key: the key exists, its file is
    # there, its ACL lets NETWORK SERVICE (or a group it is in) read it and denies it nothing.
    param($Entry)
    if ($null -eq $Entry -or -not $Entry.HasPrivateKey -or $Entry.keyError -or -not $Entry.keyName) { return $false }
    $folder = $script:Twin.machineKeys
    if ($Entry.keyProvider -eq 'cng') { $folder = Join-Path -Path $script:Twin.programData -ChildPath 'Microsoft/Crypto/Keys' }
    $file = Join-Path -Path $folder -ChildPath $Entry.keyName
    if (-not (Test-Path -LiteralPath $file)) { return $false }
    $fk = Get-TwinFileKey $file
    if ($script:Twin.unreadable -contains $fk -or -not $script:Twin.acl.Contains($fk)) { return $false }
    $aces = @((ConvertFrom-TwinSddl -Sddl $script:Twin.acl[$fk]).aces)
    $who = @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-6', 'S-1-5-32-545')
    if (@($aces | Where-Object -FilterScript { $_.type -eq 'D' -and $who -contains $_.sid }).Count -gt 0) { return $false }
    return @($aces | Where-Object -FilterScript { $_.type -eq 'A' -and $who -contains $_.sid -and ($_.mask -band 0x120089) -eq 0x120089 }).Count -gt 0
}

function Invoke-TwinGetRdpListenerAdapter {
    # LanAdapter N (not 0) is the twin's Nth network adapter (a test may set its own list with
    # Set-TwinValue -Name listenerAdapters: LANA number -> [ordered]@{ name; ipv4 }), with the IPv4 address of its route.
    $lana = Get-TwinRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'LanAdapter'
    if ($null -eq $lana -or [int]$lana -eq 0) { return $null }
    if ($script:Twin.Contains('listenerAdapters')) {
        # (An ordered dictionary's integer index is a position, so the entries are matched by key.)
        $found = @($script:Twin['listenerAdapters'].GetEnumerator() | Where-Object -FilterScript { [int]$_.Key -eq [int]$lana })
        if ($found.Count -eq 0) { return $null }
        return [ordered]@{ lanaId = [int]$lana; id = ('{{TWIN-LANA-{0}}}' -f $lana); name = [string]$found[0].Value.name; ipv4 = @($found[0].Value.ipv4) }
    }
    $adapters = @($script:Twin.adapters)
    if ([int]$lana -gt $adapters.Count) { return $null }
    $adapter = $adapters[[int]$lana - 1]
    $ipv4 = @($script:Twin.routes | Where-Object -FilterScript { $_.InterfaceIndex -eq $adapter.InterfaceIndex -and $_.IPAddress -match '^\d+\.\d+\.\d+\.\d+$' } | ForEach-Object -Process { [string]$_.IPAddress })
    return [ordered]@{ lanaId = [int]$lana; id = ('{{TWIN-LANA-{0}}}' -f $lana); name = [string]$adapter.InterfaceDescription; ipv4 = $ipv4 }
}

function Invoke-TwinTestRdpHandshake {
    # The evidence of Test-RdpHandshake from the twin's state, as a Windows listener answers the
    # request SSL|HYBRID|HYBRID_EX:
    # - nothing listens (TermService not Running, fault NoListener, another port, no certificate at
    #   all: Invoke-TwinGetRdpListener), or the listener is bound to one adapter (LanAdapter) and this
    #   is another address: refused;
    # - fault ListenerHung: connected, no answer to the X.224 request before the timeout;
    # - SecurityLayer 0 (Group Policy first, then RDP-Tcp): RDP_NEG_RSP selecting Standard RDP Security (0);
    # - SecurityLayer 1 or 2: RDP_NEG_RSP selecting HYBRID_EX (8), whatever UserAuthentication says:
    #   the request offers CredSSP, and NLA only decides whether a request without it is refused
    #   (HYBRID_REQUIRED_BY_SERVER), which this request never is;
    # - then TLS: a certificate whose key TermService cannot use (Test-TwinListenerKey) or no
    #   certificate for the pin: the connection closed right after the ClientHello, before any
    #   ServerHello (Schannel 36870 on the server; docs/diagnose.md); the SCHANNEL Server keys
    #   (TLS 1.0-1.2, Enabled = 0 disables one) choose the version: the highest of 1.2, 1.1, 1.0
    #   left on, none: closed as well (not verified on a real Windows); otherwise the handshake
    #   completes with the certificate in use, expired or not (NotAfter against the twin's clock).
    param([string]$Address, [int]$Port, [int]$TimeoutMs = 3000)
    Add-TwinCall ('Test-RdpHandshake {0}:{1}' -f $Address, $Port)
    $rdpTcp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
    $iso = { param([datetime]$Date) return $Date.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffZ', [System.Globalization.CultureInfo]::InvariantCulture) }
    $evidence = [ordered]@{
        address = $Address; port = $Port; timeoutMs = $TimeoutMs; checked = (& $iso (Get-TwinNow))
        tcp = [ordered]@{ outcome = 'connected'; ms = 0.4; error = $null }
        negotiation = $null
        tls = $null
    }
    $listening = @(Invoke-TwinGetRdpListener -Port $Port).Count -gt 0
    $lana = Get-TwinRegistryValue -Path $rdpTcp -Name 'LanAdapter'
    if ($listening -and $null -ne $lana -and [int]$lana -ne 0) {
        $bound = Invoke-TwinGetRdpListenerAdapter
        $listening = ($null -ne $bound -and @($bound.ipv4) -contains $Address)
    }
    if (-not $listening) {
        $evidence.tcp = [ordered]@{ outcome = 'refused'; ms = 0.6; error = 'ConnectionRefused' }
        return $evidence
    }
    $negotiation = [ordered]@{
        requested = 11; outcome = $null; type = $null; selectedProtocol = $null; failureCode = $null
        bytes = 0; firstBytes = $null; text = $null; trailing = $null; reason = $null; ms = 1.2; error = $null
    }
    $evidence.negotiation = $negotiation
    if (Test-TwinFault 'ListenerHung') {
        $negotiation.outcome = 'timeout'
        $negotiation.ms = [double]$TimeoutMs
        return $evidence
    }
    $layer = Get-TwinRegistryValue -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name 'SecurityLayer'
    if ($null -eq $layer) { $layer = Get-TwinRegistryValue -Path $rdpTcp -Name 'SecurityLayer' }
    if ($null -eq $layer) { $layer = 1 }
    $negotiation.outcome = 'response'
    $negotiation.type = 'RDP_NEG_RSP'
    $negotiation.bytes = 19
    if ([int]$layer -eq 0) {
        $negotiation.selectedProtocol = 0
        $negotiation.firstBytes = '030000130ed000001234000200080000000000'
        return $evidence
    }
    $negotiation.selectedProtocol = 8
    $negotiation.firstBytes = '030000130ed000001234000200080008000000'
    $tls = [ordered]@{
        outcome = $null; offered = 'Tls, Tls11, Tls12'; protocol = $null; cipher = $null; certificate = $null
        policyErrors = $null; alert = $null; errorCode = $null; firstBytes = $null; error = $null; ms = 3.5
    }
    $evidence.tls = $tls
    $schannel = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\{0}\Server'
    $version = $null
    foreach ($v in @(@('TLS 1.2', 'Tls12'), @('TLS 1.1', 'Tls11'), @('TLS 1.0', 'Tls'))) {
        $enabled = Get-TwinRegistryValue -Path ($schannel -f $v[0]) -Name 'Enabled'
        if ($null -eq $enabled -or [int]$enabled -ne 0) { $version = $v[1]; break }
    }
    $entry = Get-TwinListenerCertificate
    if ($null -eq $version -or -not (Test-TwinListenerKey -Entry $entry)) {
        $tls.outcome = 'closed'
        $tls.error = 'Authentication failed because the remote party has closed the transport stream.'
        return $evidence
    }
    $tls.outcome = 'ok'
    $tls.protocol = $version
    $tls.cipher = 'Aes256 256'
    $tls.policyErrors = 'RemoteCertificateNameMismatch, RemoteCertificateChainErrors'
    $tls.certificate = [ordered]@{ thumbprint = $entry.Thumbprint; subject = $entry.Subject; issuer = $entry.Issuer; notBefore = (& $iso $entry.NotBefore); notAfter = (& $iso $entry.NotAfter) }
    return $evidence
}

# The Export-ModuleMember calls above ran before these functions existed.
Export-ModuleMember -Function *

# The client side of diagnose --emit (scripts/ps/diagnose.ps1). A DF ping crosses a path whose MTU
# is $script:Twin.pathMtu (the interface's when unset); larger packets vanish without an answer, as
# on a black hole, and packets above the interface MTU are refused by the local stack, with
# ping.exe's English words and exit codes.
function Invoke-TwinInvokeRdpPing {
    param([string]$Address, [int]$Size, [int]$TimeoutMs = 1000)
    Add-TwinCall ('ping.exe -f -l {0} {1}' -f $Size, $Address)
    $route = Invoke-TwinGetRdpRouteMtu -Address $Address
    $ifMtu = 1500
    if ($null -ne $route -and $null -ne $route.mtu) { $ifMtu = [int]$route.mtu }
    $pathMtu = $ifMtu
    if ($script:Twin.Contains('pathMtu') -and $null -ne $script:Twin['pathMtu']) { $pathMtu = [int]$script:Twin['pathMtu'] }
    $lines = @('', ('Pinging {0} with {1} bytes of data:' -f $Address, $Size))
    if ($Size + 28 -gt $ifMtu) { return [ordered]@{ exitCode = 1; output = @($lines + 'Packet needs to be fragmented but DF set.') } }
    if ($Size + 28 -gt $pathMtu) { return [ordered]@{ exitCode = 1; output = @($lines + 'Request timed out.') } }
    return [ordered]@{ exitCode = 0; output = @($lines + ('Reply from {0}: bytes={1} time<1ms TTL=128' -f $Address, $Size)) }
}

function Invoke-TwinGetRdpRouteMtu {
    param([string]$Address)
    $route = @($script:Twin.routes) | Select-Object -First 1
    if ($null -eq $route) { return $null }
    $if = @($script:Twin.interfaces | Where-Object -FilterScript { $_.InterfaceIndex -eq $route.InterfaceIndex -and $_.AddressFamily -eq 'IPv4' }) | Select-Object -First 1
    if ($null -eq $if) { return $null }
    return [ordered]@{ interface = [string]$if.InterfaceAlias; mtu = [int]$if.NlMtu; source = [string]$route.IPAddress }
}

Export-ModuleMember -Function *
