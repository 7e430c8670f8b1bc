# handshake.ps1: The in-server RDP handshake check: the listener's own endpoint, the evidence of Test-RdpHandshake (windows.ps1) turned into one cause with the client probe's names and rules (scripts/lib/rdp-verdict.ts), and the check itself.
# requires: windows

function Get-RdpHandshakeEndpoint {
    # Where the RDP-Tcp listener answers: PortNumber (3389 when unset) and LanAdapter. LanAdapter 0
    # (or unset) listens on every adapter, so the loopback address reaches it; any other value binds
    # the listener to one adapter, whose IPv4 address Get-RdpListenerAdapter names ($null address and
    # a problem when none is known: 127.0.0.1 would be refused and look like a missing listener).
    [CmdletBinding()]
    param()
    $values = Get-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name @('PortNumber', 'LanAdapter')
    $endpoint = [ordered]@{ address = '127.0.0.1'; port = 3389; lanAdapter = 0; adapter = $null; problem = $null }
    if ($values.Contains('PortNumber')) { $endpoint.port = [int]$values['PortNumber'] }
    if ($values.Contains('LanAdapter')) { $endpoint.lanAdapter = [int]$values['LanAdapter'] }
    if ($endpoint.lanAdapter -eq 0) { return $endpoint }
    $adapter = Get-RdpListenerAdapter
    $endpoint.address = $null
    if ($null -eq $adapter) {
        $endpoint.problem = ('the listener is bound to LAN adapter {0}, and Windows does not say which adapter that is' -f $endpoint.lanAdapter)
        return $endpoint
    }
    $endpoint.adapter = $adapter.name
    if (@($adapter.ipv4).Count -eq 0) {
        $endpoint.problem = ('the listener is bound to LAN adapter {0} ({1}), which has no IPv4 address' -f $endpoint.lanAdapter, $adapter.name)
        return $endpoint
    }
    $endpoint.address = [string]@($adapter.ipv4)[0]
    return $endpoint
}

function Get-RdpHandshakeFinding {
    # The cause and one sentence for a Test-RdpHandshake evidence, by the rules of the client probe
    # (scripts/lib/rdp-verdict.ts probeFinding, negotiationFinding, tlsFinding), for what the server
    # sees of itself in ONE connection. Where the client probe asks more (its follow-ups, the TLS
    # version scan, the small-segment retry), the rule that applies without that answer is taken,
    # and the comment says why. Pure: nothing but the evidence is read.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Evidence)
    $port = $Evidence.port
    $tcp = $Evidence.tcp
    switch ([string]$tcp.outcome) {
        'refused' { return (New-RdpHandshakeFinding -Cause 'no-listener' -Detail ('nothing listens on port {0} (connection refused)' -f $port)) }
        # From inside there is no firewall, NSG or VPN in between: a connect that is not answered is a
        # listen queue that is full or a local filter, but the probe's name for it is unreachable.
        'timeout' { return (New-RdpHandshakeFinding -Cause 'unreachable' -Detail ('connect to port {0} timed out after {1} ms, even from the server itself' -f $port, $tcp.ms)) }
        'unreachable' { return (New-RdpHandshakeFinding -Cause 'unreachable' -Detail ('no route to {0} ({1})' -f $Evidence.address, $tcp.error)) }
        'reset' { return (New-RdpHandshakeFinding -Cause 'closed-by-server' -Detail 'the server accepts TCP and resets the connection at once') }
        'connected' { break }
        default { return (New-RdpHandshakeFinding -Cause 'unreachable' -Detail ('connect failed: {0}' -f $tcp.error)) }
    }
    $n = $Evidence.negotiation
    if ($null -eq $n) { return (New-RdpHandshakeFinding -Cause 'unreachable' -Detail 'the check did not get to the negotiation') }
    switch ([string]$n.outcome) {
        'response' {
            $selected = [long]$n.selectedProtocol
            if ($selected -eq 0) { return (New-RdpHandshakeFinding -Cause 'security-layer-mismatch' -Detail 'the server chose Standard RDP Security although TLS and NLA were offered: a client that requires TLS or NLA is refused (a default client falls back to it and connects)') }
            if (($selected -band 0xf) -eq 0 -or $null -eq $Evidence.tls) { return (New-RdpHandshakeFinding -Cause 'security-layer-mismatch' -Detail ('the server selected protocol 0x{0:x}' -f $selected)) }
            break
        }
        'failure' {
            $code = [int]$n.failureCode
            if ($code -eq 1) { return (New-RdpHandshakeFinding -Cause 'security-layer-mismatch' -Detail 'the server refuses the security we asked for: it requires Enhanced RDP Security (TLS or CredSSP) (SSL_REQUIRED_BY_SERVER)') }
            if ($code -eq 2) { return (New-RdpHandshakeFinding -Cause 'security-layer-mismatch' -Detail 'the server refuses the security we asked for: it only allows Standard RDP Security, not TLS (SSL_NOT_ALLOWED_BY_SERVER)') }
            if ($code -eq 3) { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail 'the server says it has no usable certificate (SSL_CERT_NOT_ON_SERVER)') }
            if ($code -eq 5) { return (New-RdpHandshakeFinding -Cause 'nla-required' -Detail 'the server requires CredSSP (Network Level Authentication) (HYBRID_REQUIRED_BY_SERVER): a client without it is refused') }
            if ($code -eq 6) { return (New-RdpHandshakeFinding -Cause 'nla-required' -Detail 'the server requires TLS with client certificate authentication (SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER): a client without it is refused') }
            # Code 4: the client probe asks again with fewer flags and takes that answer; one
            # connection cannot, so this is its rule for when every request is called inconsistent.
            # (Windows from 2012 R2 on knows HYBRID_EX and does not send code 4 to this request.)
            if ($code -eq 4) { return (New-RdpHandshakeFinding -Cause 'security-layer-mismatch' -Detail 'the server calls the request SSL|HYBRID|HYBRID_EX inconsistent (INCONSISTENT_FLAGS)') }
            return (New-RdpHandshakeFinding -Cause 'security-layer-mismatch' -Detail ('the server refused the negotiation with an unknown failure code {0}' -f $code))
        }
        'no-negotiation' { return (New-RdpHandshakeFinding -Cause 'security-layer-mismatch' -Detail 'the server does not negotiate security (older than Windows Server 2008): Standard RDP Security only; a client that requires TLS or NLA is refused') }
        'not-x224' {
            $what = $n.firstBytes
            if ($n.text) { $what = $n.text.Trim() }
            return (New-RdpHandshakeFinding -Cause 'not-rdp' -Detail ('the service on port {0} is not RDP: it answered {1}' -f $port, $what))
        }
        'timeout' {
            if ([int]$n.bytes -gt 0) { return (New-RdpHandshakeFinding -Cause 'not-rdp' -Detail ('the service on port {0} sent {1} bytes that are not an X.224 Connection Confirm, then nothing more' -f $port, $n.bytes)) }
            return (New-RdpHandshakeFinding -Cause 'listener-hung' -Detail ('port {0} accepts TCP but never answered the X.224 request within {1} ms: a hung RDP listener (Remote Desktop Services)' -f $port, $n.ms))
        }
        # The client probe then asks with Standard RDP Security only, which changes its confidence
        # and sentence, never the cause.
        'closed' { return (New-RdpHandshakeFinding -Cause 'closed-by-server' -Detail 'the server accepts TCP and closed the connection before any negotiation answer') }
        'reset' { return (New-RdpHandshakeFinding -Cause 'closed-by-server' -Detail 'the server accepts TCP and reset the connection before any negotiation answer') }
        default { return (New-RdpHandshakeFinding -Cause 'closed-by-server' -Detail ('the negotiation failed ({0}: {1})' -f $n.outcome, $n.error)) }
    }
    $t = $Evidence.tls
    switch ([string]$t.outcome) {
        'ok' {
            $c = $t.certificate
            if ($null -eq $c) { return (New-RdpHandshakeFinding -Cause 'healthy' -Detail ('negotiation and TLS complete ({0}; the certificate could not be read)' -f $t.protocol)) }
            $now = [datetime]::Parse([string]$Evidence.checked, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)
            $notAfter = [datetime]::Parse([string]$c.notAfter, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)
            $notBefore = [datetime]::Parse([string]$c.notBefore, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)
            if ($notAfter -lt $now) { return (New-RdpHandshakeFinding -Cause 'certificate-expired' -Detail ('the server''s RDP certificate ({0}) expired on {1}' -f $c.thumbprint, $c.notAfter.Substring(0, 10))) }
            if ($notBefore -gt $now) { return (New-RdpHandshakeFinding -Cause 'certificate-expired' -Detail ('the server''s RDP certificate ({0}) is not valid until {1} (or the clock is wrong)' -f $c.thumbprint, $c.notBefore.Substring(0, 10))) }
            # We offered TLS 1.0 to 1.2 in one hello: a server that answers with 1.0 or 1.1 has no 1.2,
            # which is what the client probe's scan finds before it says tls-version-mismatch (a
            # modern client offers 1.2 and up only). TLS 1.2 disabled in this machine's own SChannel
            # client settings would look the same.
            if ($t.protocol -eq 'Tls' -or $t.protocol -eq 'Tls11') { return (New-RdpHandshakeFinding -Cause 'tls-version-mismatch' -Detail ('the server completes TLS only as {0}, not TLS 1.2: no TLS version in common with a modern client' -f $t.protocol)) }
            $days = [int][Math]::Floor(($notAfter - $now).TotalDays)
            return (New-RdpHandshakeFinding -Cause 'healthy' -Detail ('negotiation and TLS complete ({0}), certificate {1} valid for {2} more days' -f $t.protocol, $c.thumbprint, $days))
        }
        'not-tls' { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail 'the server chose TLS, then aborted instead of sending a ServerHello: it cannot use its certificate or private key') }
        # One hello offered every version the client probe's scan would try (1.0-1.2), so a close or
        # reset is its "for every TLS version" rule.
        'closed' { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail 'the server chose TLS, then closed the connection right after our ClientHello (TLS 1.0-1.2 offered): it cannot use its certificate''s private key') }
        'reset' { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail 'the server chose TLS, then reset the connection right after our ClientHello (TLS 1.0-1.2 offered): it cannot use its certificate''s private key') }
        'alert' {
            $name = [string]$t.alert
            if ($name -eq 'internal_error') { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail 'the server failed internally while building its TLS answer (alert internal_error): most often its certificate''s private key cannot be used') }
            if ($name -eq 'protocol_version') { return (New-RdpHandshakeFinding -Cause 'tls-version-mismatch' -Detail 'the server refused every TLS version we offered (alert protocol_version): no TLS version in common with a modern client') }
            if ($name -eq 'handshake_failure' -or $name -eq 'insufficient_security') { return (New-RdpHandshakeFinding -Cause 'tls-version-mismatch' -Detail ('the server refused the TLS handshake with alert {0}: no TLS version or cipher in common with a modern client' -f $name)) }
            # SChannel names no alert, only its error (0x80090331: no common algorithm).
            if (-not $name) { $name = ('{0} ({1})' -f $t.errorCode, $t.error) }
            return (New-RdpHandshakeFinding -Cause 'tls-version-mismatch' -Detail ('the server ended the TLS handshake with alert {0}' -f $name))
        }
        # From inside, no path with a smaller MTU lies in between: the client probe's rule for a
        # flight that does not come over small segments either (a hung TLS stack or unusable key).
        'timeout' { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail ('the server chose TLS and never answered our ClientHello within {0} ms: a hung TLS stack or unusable key (not packet size: this is the server itself)' -f $Evidence.timeoutMs)) }
        'protocol-error' { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail ('the server chose TLS, then sent malformed TLS instead of a ServerHello and certificate ({0})' -f $t.error)) }
        default { return (New-RdpHandshakeFinding -Cause 'certificate-key-unusable' -Detail ('the TLS handshake failed: {0}' -f $t.error)) }
    }
}

function New-RdpHandshakeFinding {
    # One finding: the cause and its sentence.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Cause, [Parameter(Mandatory = $true)][string]$Detail)
    return [ordered]@{ cause = $Cause; detail = $Detail }
}

function Get-RdpHandshakeCause {
    # One cause name for a Test-RdpHandshake evidence (Get-RdpHandshakeFinding has the rules): healthy,
    # no-listener, listener-hung, security-layer-mismatch, nla-required, certificate-key-unusable,
    # certificate-expired, tls-version-mismatch, not-rdp, closed-by-server or unreachable.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Evidence)
    return (Get-RdpHandshakeFinding -Evidence $Evidence).cause
}

function Invoke-RdpHandshakeCheck {
    # The listener checked from the server itself, as a client would see it: the endpoint from the
    # registry unless -Address/-Port are given, Test-RdpHandshake with -TimeoutSeconds per step, and
    # the cause. One connection; about the connect time plus the TLS handshake when healthy, at most
    # three step timeouts when something hangs.
    [CmdletBinding()]
    param(
        [string]$Address = '',
        [ValidateRange(0, 65535)][int]$Port = 0,
        [ValidateRange(1, 60)][int]$TimeoutSeconds = 3
    )
    $result = [ordered]@{ cause = $null; healthy = $false; address = $Address; port = $Port; tcp = $null; negotiation = $null; tls = $null; detail = $null }
    if (-not $Address -or $Port -eq 0) {
        $endpoint = Get-RdpHandshakeEndpoint
        if (-not $Address) { $result.address = $endpoint.address }
        if ($Port -eq 0) { $result.port = $endpoint.port }
        if (-not $result.address) {
            $result.cause = 'not-checked'
            $result.detail = ('not checked: {0}' -f $endpoint.problem)
            return $result
        }
    }
    $evidence = Test-RdpHandshake -Address $result.address -Port $result.port -TimeoutMs ($TimeoutSeconds * 1000)
    $finding = Get-RdpHandshakeFinding -Evidence $evidence
    $result.cause = $finding.cause
    $result.healthy = ($finding.cause -eq 'healthy')
    $result.tcp = $evidence.tcp
    $result.negotiation = $evidence.negotiation
    $result.tls = $evidence.tls
    $result.detail = ('{0}:{1}: {2}' -f $result.address, $result.port, $finding.detail)
    return $result
}

function Test-RdpStepHandshake {
    # The last read-back of a step that changes the RDP listener (restart-termserv, clear-machinekeys,
    # toggle-nla): the listener checked from the server itself. Healthy, or a cause in -Accept (the
    # Standard RDP Security a step was asked to set), passes; any other cause is a problem, so the step
    # ends 'failed' with that cause and not 'changed'. A listener that is still coming up after a
    # restart gets -Attempts checks 2 s apart; a check that cannot run at all (the adapter of a
    # LanAdapter binding unknown) is a warning: the change itself read back. Sets $Result.handshake.
    # -Port: the port the step itself waited for (0: the listener's own, from the registry). The
    # detail is cut to 200 characters: the result must fit Run Command's 4 KB with it.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result,
        [string[]]$Accept = @(),
        [ValidateRange(0, 65535)][int]$Port = 0,
        [ValidateRange(1, 60)][int]$TimeoutSeconds = 3,
        [ValidateRange(1, 10)][int]$Attempts = 3
    )
    $passing = @('healthy') + @($Accept)
    $transient = @('no-listener', 'listener-hung', 'closed-by-server', 'unreachable', 'certificate-key-unusable')
    $check = $null
    $tries = 0
    try {
        while ($true) {
            $tries++
            $check = Invoke-RdpHandshakeCheck -Port $Port -TimeoutSeconds $TimeoutSeconds
            if ($passing -contains [string]$check.cause -or $check.cause -eq 'not-checked') { break }
            if ($tries -ge $Attempts -or $transient -notcontains [string]$check.cause) { break }
            Start-Sleep -Seconds 2
        }
    } catch {
        # A check that threw after one that failed: the failure stands (it was an answer).
        if ($null -eq $check -or $passing -contains [string]$check.cause -or $check.cause -eq 'not-checked') {
            $Result['handshake'] = [ordered]@{ cause = 'not-checked'; detail = ('not checked: {0}' -f $_.Exception.Message); attempts = $tries }
            if (-not $Result.Contains('warnings')) { $Result['warnings'] = @() }
            $Result['warnings'] = @($Result['warnings']) + @(('the RDP handshake could not be checked from the server itself: {0}' -f $_.Exception.Message))
            return
        }
    }
    $detail = [string]$check.detail
    if ($detail.Length -gt 200) { $detail = $detail.Substring(0, 197) + '...' }
    $Result['handshake'] = [ordered]@{ cause = [string]$check.cause; detail = $detail; attempts = $tries }
    if ($check.cause -eq 'not-checked') {
        if (-not $Result.Contains('warnings')) { $Result['warnings'] = @() }
        $Result['warnings'] = @($Result['warnings']) + @(('the RDP handshake was {0}' -f $detail))
        return
    }
    if ($passing -notcontains [string]$check.cause) {
        if (-not $Result.Contains('problems')) { $Result['problems'] = @() }
        $Result['problems'] = @($Result['problems']) + @(('after the change the RDP handshake from the server itself is {0}: {1}' -f $check.cause, $detail))
    }
}
