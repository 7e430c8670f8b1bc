# The in-server handshake check (scripts/ps/handshake.ps1) on the Windows twin: the real functions,
# dot-sourced from their file, with the boundary (Test-RdpHandshake, Get-RdpRegistryValue,
# Get-RdpListenerAdapter) answered by the twin (Invoke-TwinTestRdpHandshake models what the listener
# says in each state). Each twin state gives its cause; the endpoint comes from PortNumber and
# LanAdapter. Then the cause rules alone, on evidence shaped as Test-RdpHandshake returns it, for
# the answers the twin never gives (the lab test compares them with probe-rdp on real servers).
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    . (Join-Path -Path $script:RdpfixRoot -ChildPath 'scripts/ps/handshake.ps1')
    $script:RdpTcp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
    $script:Policy = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'
    $script:Schannel = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\{0}\Server'
    # The day the fixtures were recorded (their facts.now): their certificates are valid then.
    $script:Recorded = [datetime]::Parse('2025-06-01T12:00:00Z', [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)
    function Use-Fixture {
        param([string]$Name, [switch]$RealClock)
        Reset-WindowsTwin -Root $TestDrive -Fixture $Name
        if ($RealClock) { Set-TwinValue -Name now -Value $null } else { Set-TwinValue -Name now -Value $Recorded }
    }
    function Get-Evidence {
        # Evidence as Test-RdpHandshake returns it, connected, with the parts a test gives.
        param($Negotiation = $null, $Tls = $null, [string]$Tcp = 'connected', [string]$Checked = '2025-06-01T12:00:00.000Z')
        $n = $null
        if ($null -ne $Negotiation) {
            $n = [ordered]@{ requested = 11; outcome = 'response'; type = 'RDP_NEG_RSP'; selectedProtocol = 1; failureCode = $null; bytes = 19; firstBytes = $null; text = $null; trailing = $null; reason = $null; ms = 1; error = $null }
            foreach ($k in $Negotiation.Keys) { $n[$k] = $Negotiation[$k] }
        }
        $t = $null
        if ($null -ne $Tls) {
            $t = [ordered]@{ outcome = 'ok'; offered = 'Tls, Tls11, Tls12'; protocol = 'Tls12'; cipher = 'Aes256 256'; certificate = $null; policyErrors = $null; alert = $null; errorCode = $null; firstBytes = $null; error = $null; ms = 3 }
            foreach ($k in $Tls.Keys) { $t[$k] = $Tls[$k] }
        }
        return [ordered]@{ address = '127.0.0.1'; port = 3389; timeoutMs = 3000; checked = $Checked; tcp = [ordered]@{ outcome = $Tcp; ms = 1; error = $null }; negotiation = $n; tls = $t }
    }
}

Describe 'the in-server handshake check on the twin' {
    BeforeEach { Use-WindowsTwin }

    It 'a healthy server (healthy-2019, on the day it was recorded): healthy, HYBRID_EX selected, TLS 1.2 with the certificate in use, on 127.0.0.1:3389' {
        Use-Fixture 'healthy-2019'
        $r = Invoke-RdpHandshakeCheck
        @($r.Keys) | Should -Be @('cause', 'healthy', 'address', 'port', 'tcp', 'negotiation', 'tls', 'detail')
        $r.cause | Should -Be 'healthy' -Because $r.detail
        $r.healthy | Should -BeTrue
        $r.address | Should -Be '127.0.0.1'
        $r.port | Should -Be 3389
        $r.tcp.outcome | Should -Be 'connected'
        $r.negotiation.selectedProtocol | Should -Be 8
        $r.tls.protocol | Should -Be 'Tls12'
        $r.tls.certificate.thumbprint | Should -Be '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41'
        $r.tls.certificate.notAfter | Should -Be '2025-07-01T00:00:00.000Z'
        $r.detail | Should -Match '^127\.0\.0\.1:3389: negotiation and TLS complete \(Tls12\), certificate 3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41 valid for 29 more days$'
        Get-TwinCalls | Should -Contain 'Test-RdpHandshake 127.0.0.1:3389'
    }

    It 'the same certificate by today''s clock, and expired-2016: certificate-expired, with its NotAfter' {
        Use-Fixture 'healthy-2019' -RealClock
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'certificate-expired'
        Use-Fixture 'expired-2016'
        $r = Invoke-RdpHandshakeCheck
        $r.cause | Should -Be 'certificate-expired' -Because $r.detail
        $r.healthy | Should -BeFalse
        $r.tls.certificate.notAfter | Should -Be '2024-12-01T00:00:00.000Z'
        $r.detail | Should -Match 'expired on 2024-12-01'
    }

    It 'TermService stopped (service-stopped), or fault NoListener: refused, no-listener' {
        Use-Fixture 'service-stopped'
        $r = Invoke-RdpHandshakeCheck
        $r.cause | Should -Be 'no-listener'
        $r.tcp.outcome | Should -Be 'refused'
        $r.negotiation | Should -BeNullOrEmpty
        Use-Fixture 'healthy-2019'
        Set-TwinFault -Name NoListener
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'no-listener'
    }

    It 'fault ListenerHung: connected, no X.224 answer within the timeout, listener-hung' {
        Use-Fixture 'healthy-2019'
        Set-TwinFault -Name ListenerHung
        $r = Invoke-RdpHandshakeCheck -TimeoutSeconds 2
        $r.cause | Should -Be 'listener-hung'
        $r.tcp.outcome | Should -Be 'connected'
        $r.negotiation.outcome | Should -Be 'timeout'
        $r.negotiation.ms | Should -Be 2000
        $r.tls | Should -BeNullOrEmpty
    }

    It 'SecurityLayer 0 (locally, or by Group Policy over a local 2): Standard RDP Security selected, security-layer-mismatch' {
        Use-Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ SecurityLayer = 0; UserAuthentication = 0 })
        $r = Invoke-RdpHandshakeCheck
        $r.cause | Should -Be 'security-layer-mismatch'
        $r.negotiation.selectedProtocol | Should -Be 0
        $r.tls | Should -BeNullOrEmpty
        Use-Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $Policy -Values ([ordered]@{ SecurityLayer = 0 })
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'security-layer-mismatch'
    }

    It 'SecurityLayer <layer> with UserAuthentication <nla>: CredSSP offered, so HYBRID_EX selected and healthy either way' -ForEach @(
        @{ layer = 1; nla = 0 }, @{ layer = 1; nla = 1 }, @{ layer = 2; nla = 0 }, @{ layer = 2; nla = 1 }
    ) {
        Use-Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ SecurityLayer = $layer; UserAuthentication = $nla })
        $r = Invoke-RdpHandshakeCheck
        $r.cause | Should -Be 'healthy'
        $r.negotiation.selectedProtocol | Should -Be 8
    }

    It 'a key NETWORK SERVICE cannot read (key-unreadable-2019), and a pin naming no certificate (pinned-missing): closed before the ServerHello, certificate-key-unusable' -ForEach @('key-unreadable-2019', 'pinned-missing') {
        Use-Fixture $_
        $r = Invoke-RdpHandshakeCheck
        $r.cause | Should -Be 'certificate-key-unusable' -Because $r.detail
        $r.negotiation.selectedProtocol | Should -Be 8
        $r.tls.outcome | Should -Be 'closed'
        $r.tls.certificate | Should -BeNullOrEmpty
    }

    It 'a key deleted, or an explicit deny for NETWORK SERVICE: certificate-key-unusable; the ACL put right: healthy' {
        Use-Fixture 'healthy-2019'
        $key = Join-Path -Path (Get-TwinMachineKeys) -ChildPath 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
        Set-TwinPathSddl -Path $key -Sddl 'O:SYG:SYD:(D;;FA;;;NS)(A;;FA;;;SY)(A;;0x120089;;;NS)'
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'certificate-key-unusable'
        Set-TwinPathSddl -Path $key -Sddl 'O:SYG:SYD:(A;;FA;;;SY)(A;;0x120089;;;NS)'
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'healthy'
        [System.IO.File]::Delete($key)
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'certificate-key-unusable'
    }

    It 'policy-tls-invalid (NLA by Group Policy, SecurityLayer 2): healthy to a client that offers CredSSP' {
        Use-Fixture 'policy-tls-invalid'
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'healthy'
    }

    It 'TLS 1.2 disabled in SCHANNEL: the handshake completes as TLS 1.1, tls-version-mismatch; TLS 1.0-1.2 all disabled: closed, certificate-key-unusable' {
        Use-Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path ($Schannel -f 'TLS 1.2') -Values ([ordered]@{ Enabled = 0 })
        $r = Invoke-RdpHandshakeCheck
        $r.cause | Should -Be 'tls-version-mismatch' -Because $r.detail
        $r.tls.protocol | Should -Be 'Tls11'
        foreach ($v in @('TLS 1.1', 'TLS 1.0')) { Set-TwinRegistryKey -Path ($Schannel -f $v) -Values ([ordered]@{ Enabled = 0 }) }
        $r = Invoke-RdpHandshakeCheck
        $r.cause | Should -Be 'certificate-key-unusable'
        $r.tls.outcome | Should -Be 'closed'
    }
}

Describe 'the endpoint: PortNumber and LanAdapter' {
    BeforeEach { Use-WindowsTwin }

    It 'PortNumber 3390: the endpoint and the check use it' {
        Use-Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ PortNumber = 3390 })
        $e = Get-RdpHandshakeEndpoint
        $e.address | Should -Be '127.0.0.1'
        $e.port | Should -Be 3390
        $r = Invoke-RdpHandshakeCheck
        $r.port | Should -Be 3390
        $r.cause | Should -Be 'healthy'
        Get-TwinCalls | Should -Contain 'Test-RdpHandshake 127.0.0.1:3390'
        # The old port is what a client would still try: nothing there.
        (Invoke-RdpHandshakeCheck -Port 3389).cause | Should -Be 'no-listener'
    }

    It 'no PortNumber and no LanAdapter: 127.0.0.1:3389' {
        Use-Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ PortNumber = $null })
        $e = Get-RdpHandshakeEndpoint
        $e.address | Should -Be '127.0.0.1'
        $e.port | Should -Be 3389
        $e.lanAdapter | Should -Be 0
    }

    It 'LanAdapter 1: the IPv4 address of that adapter; the loopback address is refused there' {
        Use-Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ LanAdapter = 1 })
        $e = Get-RdpHandshakeEndpoint
        $e.address | Should -Be '192.0.2.10'
        $e.adapter | Should -Be 'Intel(R) Ethernet Connection I219-LM'
        $r = Invoke-RdpHandshakeCheck
        $r.address | Should -Be '192.0.2.10'
        $r.cause | Should -Be 'healthy' -Because $r.detail
        (Invoke-RdpHandshakeCheck -Address '127.0.0.1').cause | Should -Be 'no-listener'
    }

    It 'LanAdapter 2 named by a test''s own adapter list, and an adapter without IPv4 or unknown: not checked, and why' {
        Use-Fixture 'healthy-2019'
        Set-TwinValue -Name listenerAdapters -Value ([ordered]@{ 2 = [ordered]@{ name = 'Backend'; ipv4 = @('198.51.100.7') }; 3 = [ordered]@{ name = 'Tunnel'; ipv4 = @() } })
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ LanAdapter = 2 })
        (Get-RdpHandshakeEndpoint).address | Should -Be '198.51.100.7'
        (Invoke-RdpHandshakeCheck).cause | Should -Be 'healthy'
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ LanAdapter = 3 })
        $e = Get-RdpHandshakeEndpoint
        $e.address | Should -BeNullOrEmpty
        $e.problem | Should -Match 'LAN adapter 3 \(Tunnel\), which has no IPv4 address'
        $before = @(Get-TwinCalls | Where-Object -FilterScript { $_ -like 'Test-RdpHandshake *' }).Count
        $r = Invoke-RdpHandshakeCheck
        @(Get-TwinCalls | Where-Object -FilterScript { $_ -like 'Test-RdpHandshake *' }).Count | Should -Be $before -Because 'nothing is connected to'
        $r.cause | Should -Be 'not-checked'
        $r.healthy | Should -BeFalse
        $r.detail | Should -Match 'no IPv4 address'
        Set-TwinRegistryKey -Path $RdpTcp -Values ([ordered]@{ LanAdapter = 9 })
        (Get-RdpHandshakeEndpoint).problem | Should -Match 'does not say which adapter'
    }
}

Describe 'the cause rules on evidence the twin does not produce' {
    It '<want> for <why>' -ForEach @(
        @{ why = 'a connect that timed out'; tcp = 'timeout'; n = $null; t = $null; want = 'unreachable' }
        @{ why = 'a reset connect'; tcp = 'reset'; n = $null; t = $null; want = 'closed-by-server' }
        @{ why = 'RDP_NEG_FAILURE 1'; n = @{ outcome = 'failure'; failureCode = 1 }; t = $null; want = 'security-layer-mismatch' }
        @{ why = 'RDP_NEG_FAILURE 2'; n = @{ outcome = 'failure'; failureCode = 2 }; t = $null; want = 'security-layer-mismatch' }
        @{ why = 'RDP_NEG_FAILURE 3'; n = @{ outcome = 'failure'; failureCode = 3 }; t = $null; want = 'certificate-key-unusable' }
        @{ why = 'RDP_NEG_FAILURE 4'; n = @{ outcome = 'failure'; failureCode = 4 }; t = $null; want = 'security-layer-mismatch' }
        @{ why = 'RDP_NEG_FAILURE 5'; n = @{ outcome = 'failure'; failureCode = 5 }; t = $null; want = 'nla-required' }
        @{ why = 'RDP_NEG_FAILURE 6'; n = @{ outcome = 'failure'; failureCode = 6 }; t = $null; want = 'nla-required' }
        @{ why = 'a confirm without negotiation data'; n = @{ outcome = 'no-negotiation' }; t = $null; want = 'security-layer-mismatch' }
        @{ why = 'an SSH banner'; n = @{ outcome = 'not-x224'; text = 'SSH-2.0-OpenSSH_9.2'; bytes = 21 }; t = $null; want = 'not-rdp' }
        @{ why = 'some bytes, then silence'; n = @{ outcome = 'timeout'; bytes = 3 }; t = $null; want = 'not-rdp' }
        @{ why = 'silence'; n = @{ outcome = 'timeout'; bytes = 0 }; t = $null; want = 'listener-hung' }
        @{ why = 'a close before the confirm'; n = @{ outcome = 'closed' }; t = $null; want = 'closed-by-server' }
        @{ why = 'a reset before the confirm'; n = @{ outcome = 'reset' }; t = $null; want = 'closed-by-server' }
        @{ why = 'the MCS disconnect instead of a ServerHello'; n = @{}; t = @{ outcome = 'not-tls'; protocol = $null; firstBytes = '0300000902f0802180' }; want = 'certificate-key-unusable' }
        @{ why = 'alert protocol_version'; n = @{}; t = @{ outcome = 'alert'; protocol = $null; alert = 'protocol_version' }; want = 'tls-version-mismatch' }
        @{ why = 'alert handshake_failure'; n = @{}; t = @{ outcome = 'alert'; protocol = $null; alert = 'handshake_failure' }; want = 'tls-version-mismatch' }
        @{ why = 'alert internal_error'; n = @{}; t = @{ outcome = 'alert'; protocol = $null; alert = 'internal_error' }; want = 'certificate-key-unusable' }
        @{ why = 'SChannel''s no-common-algorithm error'; n = @{}; t = @{ outcome = 'alert'; protocol = $null; errorCode = '0x80090331' }; want = 'tls-version-mismatch' }
        @{ why = 'a TLS handshake never answered'; n = @{}; t = @{ outcome = 'timeout'; protocol = $null }; want = 'certificate-key-unusable' }
        @{ why = 'malformed TLS'; n = @{}; t = @{ outcome = 'protocol-error'; protocol = $null }; want = 'certificate-key-unusable' }
        @{ why = 'TLS completed as TLS 1.0 only'; n = @{}; t = @{ protocol = 'Tls'; certificate = [ordered]@{ thumbprint = '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41'; subject = 'CN=web-01'; issuer = 'CN=web-01'; notBefore = '2025-01-01T00:00:00.000Z'; notAfter = '2025-07-01T00:00:00.000Z' } }; want = 'tls-version-mismatch' }
        @{ why = 'a certificate not yet valid'; n = @{}; t = @{ certificate = [ordered]@{ thumbprint = '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41'; subject = 'CN=web-01'; issuer = 'CN=web-01'; notBefore = '2025-06-02T00:00:00.000Z'; notAfter = '2025-07-01T00:00:00.000Z' } }; want = 'certificate-expired' }
        @{ why = 'TLS 1.2 with a valid certificate'; n = @{}; t = @{ certificate = [ordered]@{ thumbprint = '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41'; subject = 'CN=web-01'; issuer = 'CN=web-01'; notBefore = '2025-01-01T00:00:00.000Z'; notAfter = '2025-07-01T00:00:00.000Z' } }; want = 'healthy' }
        @{ why = 'TLS 1.3 without a certificate read'; n = @{}; t = @{ protocol = 'Tls13' }; want = 'healthy' }
        @{ why = 'a selection of Standard RDP Security'; n = @{ selectedProtocol = 0 }; t = $null; want = 'security-layer-mismatch' }
    ) {
        $tcpOutcome = 'connected'
        if ($_.ContainsKey('tcp')) { $tcpOutcome = $_.tcp }
        $evidence = Get-Evidence -Tcp $tcpOutcome -Negotiation $_.n -Tls $_.t
        Get-RdpHandshakeCause -Evidence $evidence | Should -Be $want
        (Get-RdpHandshakeFinding -Evidence $evidence).detail | Should -Not -BeNullOrEmpty
    }
}
