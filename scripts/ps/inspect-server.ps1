# inspect-server.ps1: The inspect-server step: collect the server-side facts behind RDP error 0x904/0x7 (read-only; only the evidence file is written).
# requires: facts, handshake
# The keys, the firewall group and the listener's key container prefix are the same on every
# server, so they are literals here (rdpfix's lib/server-ps.ts names the same values for its
# findings; test/inspect-server.test.ts checks they agree). What the facts mean:
# docs/windows-reference.md; their shapes: test/fixtures/inspect-server/README.md.

function Get-RdpServerInspection {
    # inspect-server: the facts, the full evidence saved as a file on the target (unless
    # -SaveEvidence:$false), and the compact result trimmed to fit Azure Run Command's 4 KB.
    [CmdletBinding()]
    param([int]$EventHours = 72, [int]$MaxEvents = 6, [switch]$SaveEvidence)
    $facts = Get-RdpServerFacts -EventHours $EventHours -MaxEvents $MaxEvents
    if ($SaveEvidence) { $facts.evidenceFile = Save-RdpEvidence -Facts $facts -EventHours $EventHours }
    return Compress-RdpResult -Result ([ordered]@{ step = 'inspect-server'; status = 'ok'; facts = $facts }) -Drop @('facts.events.newest', 'facts.certificate.store', 'facts.firewall', 'facts.machineKeys.containers')
}

function Get-RdpServerFacts {
    # Collects the raw facts; rdpfix's TypeScript turns them into findings.
    [CmdletBinding()]
    param([int]$EventHours = 72, [int]$MaxEvents = 6)
    $port = Get-RdpPort
    $os = Get-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' -Name @('CurrentBuild', 'ProductName')
    $facts = [ordered]@{
        computer = $env:COMPUTERNAME
        now = (Get-Date).ToUniversalTime().ToString('o')
        build = [int]$os['CurrentBuild']
        product = $os['ProductName']
        runAs = Get-RdpRunAs
        port = $port
        services = @(Get-RdpServiceSnapshot)
        termServicePid = Get-RdpServiceProcessId -Name 'TermService'
        terminalServer = Get-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server' -Name @('fDenyTSConnections', 'TSEnabled', 'TSServerDrainMode')
        rdpTcp = Get-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name @('PortNumber', 'UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel', 'fEnableWinStation', 'fLogonDisabled', 'SSLCertificateSHA1Hash')
        policy = Get-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name @('fDenyTSConnections', 'UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel', 'fAllowSecProtocolNegotiation')
        listeners = @(Get-RdpListener -Port $port)
        firewall = @()
        schannel = [ordered]@{}
        certificate = Get-RdpCertificateState -WithKey
        machineKeys = [ordered]@{ path = $null; sddl = $null; containers = @(); error = $null }
        sessionEnvSid = $null
        handshake = $null
        events = Get-RdpEventSummary -Since ((Get-Date).AddHours(-$EventHours)) -Max $MaxEvents
        evidenceFile = $null
    }
    $facts.firewall = @(Get-RdpFirewallRule -Group '@FirewallAPI.dll,-28752')
    foreach ($version in @('TLS 1.0', 'TLS 1.1', 'TLS 1.2', 'TLS 1.3')) {
        $facts.schannel[$version] = Get-RdpSchannelServer -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols' -Version $version
    }
    $machineKeys = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft\Crypto\RSA\MachineKeys'
    $facts.machineKeys.path = $machineKeys
    $facts.machineKeys.sddl = Get-RdpPathSddl -Path $machineKeys -Directory
    try {
        $facts.machineKeys.containers = @(Get-ChildItem -LiteralPath $machineKeys -Filter 'f686aace6942fb7f7ceb231212eef4a4_*' -Force -File -ErrorAction Stop |
            Select-Object -First 4 | ForEach-Object -Process { [ordered]@{ name = $_.Name; sddl = Get-RdpPathSddl -Path $_.FullName } })
    } catch {
        $facts.machineKeys.error = $_.Exception.Message
    }
    $facts.sessionEnvSid = ConvertTo-RdpAccountSid -Domain 'NT SERVICE' -Name 'SessionEnv'
    # Last, so every fact above is in even when the listener hangs: the listener opened from the
    # server itself as a client does (TCP, X.224, TLS), one connection, 3 s per step.
    try {
        $check = Invoke-RdpHandshakeCheck -TimeoutSeconds 3
        $facts.handshake = [ordered]@{ cause = $check.cause; detail = $check.detail }
    } catch {
        $facts.handshake = [ordered]@{ cause = 'not-checked'; detail = ('not checked: {0}' -f $_.Exception.Message) }
    }
    return $facts
}

function Get-RdpSchannelServer {
    # Enabled and DisabledByDefault of one protocol's Server subkey. The key is joined as text:
    # Join-Path would resolve the HKLM: drive itself, a registry touchpoint outside windows.ps1.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][string]$Version)
    return Get-RdpRegistryValue -Path ($Path + '\' + $Version + '\Server') -Name @('Enabled', 'DisabledByDefault')
}

function Save-RdpEvidence {
    # The full evidence (more events, whole messages) as a file on the target, so the compact result
    # can stay under Azure Run Command's 4 KB.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)]$Facts, [int]$EventHours = 72)
    $folder = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\evidence'
    $file = Join-Path -Path $folder -ChildPath ('inspect-server-{0}.json' -f (Get-Date).ToString('yyyyMMdd-HHmmss'))
    if ($PSCmdlet.ShouldProcess($file, 'Save the full evidence')) {
        $full = [ordered]@{ facts = $Facts; events = Get-RdpEventSummary -Since ((Get-Date).AddHours(-$EventHours)) -Max 40 -MessageLength 600 -Provider @('Schannel', 'Microsoft-Windows-TerminalServices-RemoteConnectionManager', 'Service Control Manager') }
        $null = New-Item -ItemType Directory -Path $folder -Force
        Set-Content -LiteralPath $file -Value ($full | ConvertTo-Json -Depth 8) -Encoding UTF8
        return $file
    }
    return $null
}
