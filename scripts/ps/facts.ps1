# facts.ps1: Services, listener, port, certificate, key and event facts in the shapes Windows returns them, and the 4 KB trim of a result.
# requires: windows, sddl

function Get-RdpServiceSnapshot {
    # The RDP services' Name, Status and StartType (see Get-RdpWinService).
    [CmdletBinding()]
    param([string[]]$Name = @('TermService', 'UmRdpService', 'SessionEnv'))
    return @(Get-RdpWinService -Name $Name)
}

function Get-RdpPort {
    [CmdletBinding()]
    param()
    $rdp = Get-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name @('PortNumber')
    if ($rdp.Contains('PortNumber')) { return [int]$rdp['PortNumber'] }
    return 3389
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
    # ConvertTo-Json writes it (dates as "\/Date(ms)\/" in Windows PowerShell 5.1).
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
    # self-signed key is a CSP container (MachineKeys); CNG keys live in Crypto\Keys. When the key
    # cannot be opened, the listener's well-known container name is the fallback.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Certificate)
    $crypto = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft\Crypto'
    $opened = Get-RdpCertificateKey -Certificate $Certificate
    $info = [ordered]@{ opened = [bool]$opened.opened; provider = $opened.provider; file = $null; sddl = $null; error = $opened.error }
    $name = $opened.name
    $folder = Join-Path -Path $crypto -ChildPath 'RSA\MachineKeys'
    if ($opened.provider -eq 'cng') { $folder = Join-Path -Path $crypto -ChildPath 'Keys' }
    if (-not $name) {
        $guid = (Get-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Microsoft\Cryptography' -Name @('MachineGuid'))['MachineGuid']
        if ($guid) { $name = 'f686aace6942fb7f7ceb231212eef4a4_' + $guid }
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
    $pin = Get-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name @('SSLCertificateSHA1Hash')
    $pinned = $null
    if ($pin.Contains('SSLCertificateSHA1Hash')) {
        $pinned = (@($pin['SSLCertificateSHA1Hash']) | ForEach-Object -Process { '{0:X2}' -f [int]$_ }) -join ''
    }
    $store = @(Get-RdpStoreCertificate -Store 'Remote Desktop' | Sort-Object -Property NotAfter -Descending)
    $inUse = $null
    $source = 'none'
    if ($pinned) {
        $source = 'pinned-missing'
        foreach ($storeName in @('My', 'Remote Desktop')) {
            $candidate = @(Get-RdpStoreCertificate -Store $storeName -Thumbprint $pinned)
            if ($candidate.Count -gt 0) { $inUse = $candidate[0]; $source = 'pinned'; break }
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
            $found += @(Get-RdpWinEvent -ProviderName $name -Id $ids[$name] -StartTime $Since)
        } catch {
            $errors += ('{0}: {1}' -f $name, $_.Exception.Message)
        }
    }
    $counts = [ordered]@{}
    foreach ($group in @($found | Group-Object -Property Id)) { $counts[[string]$group.Name] = $group.Count }
    $newest = @($found | Sort-Object -Property TimeCreated -Descending | Select-Object -First $Max | Select-Object -Property @('Id', 'ProviderName', 'TimeCreated',
        @{ Name = 'Message'; Expression = { $m = [string]$_.Message -replace '\s+', ' '; $m.Substring(0, [Math]::Min($MessageLength, $m.Length)) } }))
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
}
