# diagnose.ps1: diagnose.ts --emit, the client-side diagnosis for a Windows workstation without Node: the name resolved, the handshake of Test-RdpHandshake (windows.ps1: TCP, X.224 SSL|HYBRID|HYBRID_EX, TLS and certificate), a small TCP connect sample, a DF-ping path-MTU check (Invoke-RdpPing) where the evidence points at the network, and one cause by the rules of scripts/lib/rdp-verdict.ts (the handshake's own through Get-RdpHandshakeFinding, handshake.ps1; the client's view and the network rules here). Read-only: it never needs elevation.
# requires: windows, handshake

function Invoke-RdpClientDiagnose {
    # The whole diagnosis of HostName:Port from this machine, as the step's result: the verdict's
    # fields with diagnose --json's names (cause, confidence, summary, evidence, recipe, next, notes,
    # compatibility, clients) and the raw evidence (probe, network). -Fix is the table diagnose.ts
    # generates from scripts/lib/causes.ts and rdp-verdict.ts nextSteps: per cause its recipe, next
    # commands and notes. The text for humans is Write-RdpVerdictText's.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$HostName,
        [ValidateRange(1, 65535)][int]$Port = 3389,
        [ValidateRange(100, 60000)][int]$TimeoutMs = 3000,
        [ValidateRange(1, 50)][int]$Samples = 10,
        [ValidateRange(0, 1000)][int]$IntervalMs = 20,
        [ValidateRange(1, 60000)][int]$MaxRttMs = 500,
        [ValidateRange(1, 50)][int]$MaxLost = 2,
        [Parameter(Mandatory = $true)]$Fix
    )
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    $cutoffMs = 1200
    $evidence = [ordered]@{
        host = $HostName; port = $Port; address = $null; dns = $null; handshake = $null
        sample = $null; sampleSkipped = $null; recheck = $null; pathMtu = $null
        thresholds = [ordered]@{ maxRttMs = $MaxRttMs; maxLost = $MaxLost }
    }
    $lookup = Get-RdpHostAddress -HostName $HostName -TimeoutMs $TimeoutMs
    $evidence.address = $lookup.address
    $evidence.dns = $lookup.dns
    $sampleConns = 0
    if ($null -eq $lookup.address) {
        $evidence.sampleSkipped = 'the name does not resolve: there is no address to connect to'
    } else {
        $h = Test-RdpHandshake -Address $lookup.address -Port $Port -TimeoutMs $TimeoutMs
        $evidence.handshake = $h
        $tcp = [string]$h.tcp.outcome
        if ($tcp -eq 'refused') { $evidence.sampleSkipped = 'the probe''s connect was refused (nothing listens on the port): more connects cannot change that' }
        elseif ($tcp -eq 'unreachable') { $evidence.sampleSkipped = 'there is no route to the host: more connects cannot change that' }
        elseif ($Samples -gt 1) {
            # Sample 0 is the handshake's own connect, as diagnose counts the probe's.
            $first = [ordered]@{ i = 0; outcome = (ConvertTo-RdpSampleOutcome -Outcome $tcp); ms = [double]$h.tcp.ms; lost = $false }
            if ($first.outcome -eq 'timeout') { $first.lost = $true }
            elseif ($first.outcome -ne 'error' -and $first.outcome -ne 'unreachable' -and $first.ms -ge 950) { $first.lost = $true }
            $extra = @(Measure-RdpConnectSample -Address $lookup.address -Port $Port -Count ($Samples - 1) -IntervalMs $IntervalMs -CutoffMs $cutoffMs -First 1 -StartDelayMs $IntervalMs)
            $sampleConns += $extra.Count
            $evidence.sample = Get-RdpSampleSummary -Results (@($first) + $extra) -IntervalMs $IntervalMs -CutoffMs $cutoffMs
            $s = $evidence.sample
            # Lost connects in a burst are the path, or a listen queue that overflowed: paced connects tell them apart.
            if ($s.lost -gt 0 -and $s.answered -gt 0) {
                $paced = @(Measure-RdpConnectSample -Address $lookup.address -Port $Port -Count 5 -IntervalMs 100 -CutoffMs $cutoffMs -First $s.attempts -StartDelayMs 300)
                $sampleConns += $paced.Count
                $evidence.recheck = Get-RdpSampleSummary -Results $paced -IntervalMs 100 -CutoffMs $cutoffMs
            }
        }
        if (Test-RdpNetworkSuspect -Evidence $evidence) {
            # A DF ping that has not come back after 20 connect times (at least 300 ms) is lost.
            $pingMs = 1000
            if ($tcp -eq 'connected') { $pingMs = [int][Math]::Min(1000, [Math]::Max(300, [Math]::Round([double]$h.tcp.ms * 20))) }
            $evidence.pathMtu = Invoke-RdpPathMtuCheck -Address $lookup.address -PingTimeoutMs $pingMs -DeadlineMs 10000
        }
    }
    $verdict = Get-RdpClientVerdict -Evidence $evidence -Fix $Fix
    $status = 'failed'
    if ($verdict.cause -eq 'healthy') { $status = 'ok' }
    $probeConns = 0
    if ($null -ne $evidence.handshake) { $probeConns = 1 }
    $result = [ordered]@{ step = 'diagnose'; status = $status; endpoint = (Get-RdpEndpointText -HostName $HostName -Port $Port); host = $HostName; port = $Port }
    foreach ($k in $verdict.Keys) { $result[$k] = $verdict[$k] }
    $result.changes = @()
    $result.probe = [ordered]@{ address = $evidence.address; dns = $evidence.dns; handshake = $evidence.handshake }
    $result.network = [ordered]@{ sample = $evidence.sample; sampleSkipped = $evidence.sampleSkipped; recheck = $evidence.recheck; pathMtu = $evidence.pathMtu; thresholds = $evidence.thresholds }
    $result.connections = [ordered]@{ probe = $probeConns; sample = $sampleConns; total = $probeConns + $sampleConns }
    $result.runsOn = 'client'
    $result.ms = [Math]::Round($watch.Elapsed.TotalMilliseconds)
    return $result
}

function Get-RdpEndpointText {
    # HOST:PORT as diagnose writes it (an IPv6 address in brackets).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$HostName, [Parameter(Mandatory = $true)][int]$Port)
    if ($HostName.Contains(':')) { return ('[{0}]:{1}' -f $HostName, $Port) }
    return ('{0}:{1}' -f $HostName, $Port)
}

function Get-RdpHostAddress {
    # The address the system resolver gives for HostName (an IP address is taken as it is), IPv4
    # first as the RDP client does on a dual-stack name; dns is $null for an address, else the
    # lookup's time and, when it failed, its error. Bounded by TimeoutMs.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$HostName, [int]$TimeoutMs = 3000)
    $ip = $null
    if ([System.Net.IPAddress]::TryParse($HostName, [ref]$ip)) { return [ordered]@{ address = $ip.ToString(); family = [string]$ip.AddressFamily; dns = $null } }
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    $dns = [ordered]@{ ms = 0; code = $null; error = $null }
    $list = @()
    try {
        $pending = [System.Net.Dns]::BeginGetHostAddresses($HostName, $null, $null)
        if (-not $pending.AsyncWaitHandle.WaitOne($TimeoutMs)) {
            $dns.code = 'ETIMEOUT'
            $dns.error = ('no DNS answer for {0} (ETIMEOUT: no answer within the time limit)' -f $HostName)
        } else {
            $list = @([System.Net.Dns]::EndGetHostAddresses($pending))
        }
    } catch {
        $base = $_.Exception.GetBaseException()
        $dns.code = 'ENOTFOUND'
        if ($base -is [System.Net.Sockets.SocketException] -and [string]$base.SocketErrorCode -eq 'TryAgain') { $dns.code = 'EAI_AGAIN' }
        $dns.error = ('the lookup of {0} failed ({1}: {2})' -f $HostName, $dns.code, $base.Message)
    }
    $dns.ms = [Math]::Round($watch.Elapsed.TotalMilliseconds, 2)
    $pick = @($list | Where-Object -FilterScript { [string]$_.AddressFamily -eq 'InterNetwork' }) + @($list | Where-Object -FilterScript { [string]$_.AddressFamily -ne 'InterNetwork' })
    if ($null -eq $dns.code -and $pick.Count -eq 0) {
        $dns.code = 'ENODATA'
        $dns.error = ('the name {0} exists but has no address record (ENODATA)' -f $HostName)
    }
    if ($null -ne $dns.code) { return [ordered]@{ address = $null; family = $null; dns = $dns } }
    return [ordered]@{ address = $pick[0].ToString(); family = [string]$pick[0].AddressFamily; dns = $dns }
}

function ConvertTo-RdpSampleOutcome {
    # Test-RdpHandshake's TCP outcome in the connect sample's words (connected is accepted).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Outcome)
    if ($Outcome -eq 'connected') { return 'accepted' }
    if (@('refused', 'reset', 'timeout', 'unreachable') -contains $Outcome) { return $Outcome }
    return 'error'
}

function Measure-RdpConnectSample {
    # Count TCP connects to Address:Port, IntervalMs apart, the first StartDelayMs from now, numbered
    # from First; each is closed as soon as it is answered, and one still pending after CutoffMs
    # lost its SYN or SYN-ACK (the first retransmit is at 1 s). The same sample as
    # scripts/lib/connect-sample.ts: i, outcome (accepted, refused, reset, timeout, unreachable,
    # error), ms, lost (answered only after >= 950 ms, or not at all).
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Address,
        [Parameter(Mandatory = $true)][int]$Port,
        [Parameter(Mandatory = $true)][int]$Count,
        [int]$IntervalMs = 20,
        [int]$CutoffMs = 1200,
        [int]$First = 1,
        [int]$StartDelayMs = 20
    )
    $ip = [System.Net.IPAddress]::Parse($Address)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $slots = New-Object -TypeName System.Collections.Generic.List[object]
    $next = 0
    try {
        while ($true) {
            $now = $clock.Elapsed.TotalMilliseconds
            while ($next -lt $Count -and $now -ge ($StartDelayMs + $next * $IntervalMs)) {
                $client = New-Object -TypeName System.Net.Sockets.TcpClient -ArgumentList @($ip.AddressFamily)
                $slot = [ordered]@{ i = $First + $next; client = $client; pending = $null; start = $clock.Elapsed.TotalMilliseconds; outcome = $null; ms = 0 }
                try { $slot.pending = $client.BeginConnect($ip, $Port, $null, $null) } catch { $slot.outcome = 'error' }
                $slots.Add($slot)
                $next++
            }
            $now = $clock.Elapsed.TotalMilliseconds
            $open = @($slots | Where-Object -FilterScript { $null -eq $_.outcome })
            foreach ($s in $open) {
                if ($s.pending.IsCompleted) {
                    $s.ms = [Math]::Round($now - $s.start, 2)
                    try {
                        $s.client.EndConnect($s.pending)
                        $s.outcome = 'accepted'
                    } catch {
                        $base = $_.Exception.GetBaseException()
                        $code = ''
                        if ($base -is [System.Net.Sockets.SocketException]) { $code = [string]$base.SocketErrorCode }
                        if ($code -eq 'ConnectionRefused') { $s.outcome = 'refused' }
                        elseif ($code -eq 'ConnectionReset') { $s.outcome = 'reset' }
                        elseif ($code -eq 'TimedOut') { $s.outcome = 'timeout' }
                        elseif ($code -eq 'HostUnreachable' -or $code -eq 'NetworkUnreachable') { $s.outcome = 'unreachable' }
                        else { $s.outcome = 'error' }
                    }
                    $s.client.Close()
                } elseif ($now - $s.start -ge $CutoffMs) {
                    $s.ms = [double]$CutoffMs
                    $s.outcome = 'timeout'
                    $s.client.Close()
                }
            }
            $open = @($slots | Where-Object -FilterScript { $null -eq $_.outcome })
            if ($open.Count -eq 0 -and $next -ge $Count) { break }
            # Sleep until the next start, the next cut-off or the next answer, whichever comes first.
            $now = $clock.Elapsed.TotalMilliseconds
            $wait = 1000.0
            if ($next -lt $Count) { $wait = [Math]::Min($wait, $StartDelayMs + $next * $IntervalMs - $now) }
            foreach ($s in $open) { $wait = [Math]::Min($wait, $s.start + $CutoffMs - $now) }
            $wait = [int][Math]::Max(1, [Math]::Ceiling($wait))
            if ($open.Count -gt 0) { $null = [System.Threading.WaitHandle]::WaitAny(@($open | ForEach-Object -Process { $_.pending.AsyncWaitHandle }), $wait) }
            else { Start-Sleep -Milliseconds $wait }
        }
    } finally {
        foreach ($s in $slots) { $s.client.Close() }
    }
    $out = @()
    foreach ($s in $slots) {
        $answered = @('accepted', 'refused', 'reset') -contains $s.outcome
        $lost = ($s.outcome -eq 'timeout') -or ($answered -and $s.ms -ge 950)
        $out += [ordered]@{ i = $s.i; outcome = $s.outcome; ms = $s.ms; lost = $lost }
    }
    return $out
}

function Get-RdpSampleSummary {
    # The sample's statistics in scripts/lib/connect-sample.ts summariseSample's shape: attempts,
    # answered, accepted, refused, lost, and the prompt connect times (lost ones left out).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][AllowEmptyCollection()][object[]]$Results, [int]$IntervalMs = 20, [int]$CutoffMs = 1200)
    $answered = @($Results | Where-Object -FilterScript { @('accepted', 'refused', 'reset') -contains $_.outcome })
    $times = @($answered | Where-Object -FilterScript { -not $_.lost } | ForEach-Object -Process { [double]$_.ms } | Sort-Object)
    $rtt = $null
    if ($times.Count -gt 0) {
        $sum = 0.0
        foreach ($t in $times) { $sum += $t }
        $avg = $sum / $times.Count
        $var = 0.0
        foreach ($t in $times) { $var += ($t - $avg) * ($t - $avg) }
        $p50 = $times[[int][Math]::Min($times.Count - 1, [Math]::Max(0, [Math]::Ceiling(0.5 * $times.Count) - 1))]
        $p95 = $times[[int][Math]::Min($times.Count - 1, [Math]::Max(0, [Math]::Ceiling(0.95 * $times.Count) - 1))]
        $rtt = [ordered]@{
            min = [Math]::Round($times[0], 2); p50 = [Math]::Round($p50, 2); p95 = [Math]::Round($p95, 2)
            max = [Math]::Round($times[$times.Count - 1], 2); avg = [Math]::Round($avg, 2); jitter = [Math]::Round([Math]::Sqrt($var / $times.Count), 2)
        }
    }
    return [ordered]@{
        attempts = $Results.Count
        answered = $answered.Count
        accepted = @($Results | Where-Object -FilterScript { $_.outcome -eq 'accepted' }).Count
        refused = @($Results | Where-Object -FilterScript { $_.outcome -eq 'refused' }).Count
        lost = @($Results | Where-Object -FilterScript { $_.lost }).Count
        intervalMs = $IntervalMs
        cutoffMs = $CutoffMs
        rtt = $rtt
        results = $Results
    }
}

function Test-RdpNetworkSuspect {
    # diagnose.ts pointsAtNetwork: does the evidence point at the network, so that the path MTU
    # matters? The TLS flight never came, connects time out while others are answered, or connects
    # were lost (and not only in the burst).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Evidence)
    $h = $Evidence.handshake
    if ($null -eq $h) { return $false }
    if ($null -ne $h.tls -and [string]$h.tls.outcome -eq 'timeout') { return $true }
    $s = $Evidence.sample
    if ($null -eq $s) { return $false }
    if ([string]$h.tcp.outcome -eq 'timeout' -and $s.answered -gt 0) { return $true }
    $rc = $Evidence.recheck
    return ($s.lost -gt 0 -and $s.answered -gt 0 -and ($null -eq $rc -or $rc.lost -gt 0))
}

function ConvertFrom-RdpPingOutput {
    # One ping.exe -f run read by Windows ping's semantics (scripts/lib/ping.ts parsePing, win32):
    # too-big ("Packet needs to be fragmented but DF set.", the local stack and a router's ICMP
    # alike), reply (a "time=12ms TTL=117" line, which keeps its shape in every UI language),
    # error (unreachable, General failure, unknown host), else silent.
    [CmdletBinding()]
    param([AllowEmptyCollection()][string[]]$Output = @())
    $text = ($Output -join "`n")
    if ($text -match 'Packet needs to be fragmented but DF set') { return 'too-big' }
    if ($text -match '[=<]\d+([.,]\d+)?\s*ms\s+TTL=\d+') { return 'reply' }
    if ($text -match 'unreachable|TTL expired|General failure|could not find host|transmit failed') { return 'error' }
    return 'silent'
}

function Invoke-RdpPathMtuCheck {
    # The path-MTU search of scripts/lib/pmtu.ts searchPathMtu over DF pings (Invoke-RdpPing): a
    # reply is proof, silence is not, so only the size that decides is sent again (retries 1); from
    # 576 up to the outgoing interface's MTU (Get-RdpRouteMtu, 1500 when unknown). Bounded by
    # DeadlineMs. The result has lib/rdp-verdict.ts PathMtuCheck's fields.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Address, [int]$PingTimeoutMs = 1000, [int]$DeadlineMs = 10000)
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    $check = [ordered]@{ status = 'done'; host = $Address; pathMtu = $null; interface = $null; interfaceMtu = $null; probes = 0; blackhole = $null; reason = $null; ms = 0 }
    if ($Address.Contains(':')) {
        $check.status = 'skipped'
        $check.reason = 'IPv6: ping -f (do not fragment) is IPv4 only'
        return $check
    }
    $route = Get-RdpRouteMtu -Address $Address
    if ($null -ne $route) { $check.interface = $route.interface; $check.interfaceMtu = $route.mtu }
    $ceiling = 1500
    if ($null -ne $check.interfaceMtu -and [int]$check.interfaceMtu -ge 576) { $ceiling = [int][Math]::Min(65535, [int]$check.interfaceMtu) }
    $floor = 576
    $soft = New-Object -TypeName System.Collections.Generic.List[int]
    $failure = $null
    $state = [ordered]@{ lo = $floor - 1; hard = $ceiling + 1; hardBySilence = $false; silentBeforeReply = 0; soft = $soft; floor = $floor }
    $send = @{ Address = $Address; PingTimeoutMs = $PingTimeoutMs; DeadlineMs = $DeadlineMs; Watch = $watch; Check = $check }
    $a = Get-RdpDfAnswer @send -Mtu $ceiling
    if ($a -eq 'error' -or $a -eq 'deadline') { $failure = $a } else { Add-RdpDfAnswer -State $state -Mtu $ceiling -Answer $a }
    $guard = 0
    while ($null -eq $failure -and $guard -lt 200) {
        $guard++
        $upper = $state.hard
        foreach ($x in $soft) { if ($x -gt $state.lo -and $x -lt $upper) { $upper = $x } }
        if ($upper -le $state.lo + 1) {
            if ($upper -eq $state.hard) { break }
            # The deciding failure is unconfirmed: send it once more.
            $a = Get-RdpDfAnswer @send -Mtu $upper
            if ($a -eq 'error' -or $a -eq 'deadline') { $failure = $a; break }
            if ($a -eq 'silent') { $null = $soft.Remove($upper); $state.hard = $upper; $state.hardBySilence = $true }
            else { Add-RdpDfAnswer -State $state -Mtu $upper -Answer $a }
            continue
        }
        if ($state.lo -lt $floor -and $state.silentBeforeReply -ge 2 -and $floor -lt $upper -and -not $soft.Contains($floor)) { $next = $floor }
        else { $next = [int][Math]::Floor(($state.lo + $upper) / 2) }
        $a = Get-RdpDfAnswer @send -Mtu $next
        if ($a -eq 'error' -or $a -eq 'deadline') { $failure = $a; break }
        Add-RdpDfAnswer -State $state -Mtu $next -Answer $a
    }
    $check.ms = [Math]::Round($watch.Elapsed.TotalMilliseconds)
    if ($failure -eq 'deadline') {
        $check.status = 'error'
        $check.reason = ('no result within {0} ms' -f $DeadlineMs)
        return $check
    }
    if ($failure -eq 'error') {
        $check.reason = ('ping.exe to {0} failed (unreachable or a local error)' -f $Address)
        return $check
    }
    if ($state.lo -ge $floor) {
        $check.pathMtu = $state.lo
        $check.blackhole = ($state.lo -lt $ceiling -and $state.hardBySilence)
    } else {
        $check.reason = ('no echo reply from {0} even at {1} bytes: ICMP echo is blocked on the way or at the host (Windows Firewall blocks it by default), or the host is down' -f $Address, $floor)
    }
    return $check
}

function Get-RdpDfAnswer {
    # One DF probe of the path-MTU search: a packet of Mtu bytes (payload Mtu - 28), its answer
    # (reply, too-big, silent, error), or deadline when the search has no time left. Counts the probe.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Address, [Parameter(Mandatory = $true)][int]$Mtu, [int]$PingTimeoutMs = 1000, [int]$DeadlineMs = 10000, [Parameter(Mandatory = $true)]$Watch, [Parameter(Mandatory = $true)]$Check)
    if ($Watch.ElapsedMilliseconds -ge $DeadlineMs) { return 'deadline' }
    $ping = Invoke-RdpPing -Address $Address -Size ($Mtu - 28) -TimeoutMs $PingTimeoutMs
    $Check.probes++
    return (ConvertFrom-RdpPingOutput -Output $ping.output)
}

function Add-RdpDfAnswer {
    # What one answer teaches the search (pmtu.ts searchPathMtu learn): a reply is the new lower
    # bound and confirms every silent size below it wrong; too-big is a hard upper bound; silence is
    # kept as unconfirmed.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State, [Parameter(Mandatory = $true)][int]$Mtu, [Parameter(Mandatory = $true)][string]$Answer)
    $soft = $State.soft
    if ($Answer -eq 'reply') {
        if ($Mtu -gt $State.lo) { $State.lo = $Mtu }
        foreach ($x in @($soft)) { if ($x -le $Mtu) { $null = $soft.Remove($x) } }
    } elseif ($Answer -eq 'too-big') {
        $null = $soft.Remove($Mtu)
        if ($Mtu -lt $State.hard) { $State.hard = $Mtu; $State.hardBySilence = $false }
    } elseif ($Answer -eq 'silent') {
        if (-not $soft.Contains($Mtu)) { $soft.Add($Mtu) }
        if ($State.lo -lt $State.floor) { $State.silentBeforeReply++ }
    }
}

function Get-RdpClientFinding {
    # The probe part of the verdict as a client sees it: the cause Get-RdpHandshakeFinding
    # (handshake.ps1) names for the one handshake, with the client's view where the in-server check
    # rules otherwise: a TLS flight that never comes can be the path (mtu-blackhole, which the
    # path-MTU check then confirms or clears), and timeouts are marked as what the network could
    # cause (networkish), as scripts/lib/rdp-verdict.ts probeFinding does. Confidence: that rule's.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Evidence)
    $f = [ordered]@{ cause = $null; confidence = 0.5; summary = $null; networkish = $false; flightLost = $false }
    $h = $Evidence.handshake
    if ($null -eq $h) {
        $f.cause = 'name-not-resolved'
        $f.confidence = 0.85
        if (@('ENOTFOUND', 'ENODATA') -contains [string]$Evidence.dns.code) { $f.confidence = 0.95 }
        $f.summary = ('{0}: no address to connect to' -f $Evidence.dns.error)
        return $f
    }
    $hf = Get-RdpHandshakeFinding -Evidence $h
    $f.cause = $hf.cause
    $f.summary = $hf.detail
    $tcp = [string]$h.tcp.outcome
    $n = $h.negotiation
    $t = $h.tls
    $table = @{
        'no-listener' = 0.95; 'unreachable' = 0.9; 'closed-by-server' = 0.85; 'not-rdp' = 0.9; 'security-layer-mismatch' = 0.9
        'nla-required' = 0.9; 'certificate-key-unusable' = 0.8; 'certificate-expired' = 0.95; 'tls-version-mismatch' = 0.7; 'healthy' = 0.95; 'listener-hung' = 0.75
    }
    if ($table.ContainsKey($f.cause)) { $f.confidence = $table[$f.cause] }
    if ($tcp -eq 'timeout') {
        $f.confidence = 0.8
        $f.networkish = $true
        $f.summary = ('connect to port {0} timed out: SYNs are dropped (firewall, NSG, VPN) or the host is down' -f $h.port)
    } elseif ($tcp -eq 'connected' -and $null -ne $n -and [string]$n.outcome -eq 'timeout' -and [int]$n.bytes -eq 0) {
        $f.networkish = $true
    } elseif ($null -ne $t -and [string]$t.outcome -eq 'timeout') {
        $f.cause = 'mtu-blackhole'
        $f.confidence = 0.6
        $f.networkish = $true
        $f.flightLost = $true
        $f.summary = 'small packets pass but the server''s TLS flight never arrives: suspect a path that drops large packets (path-MTU black hole)'
    } elseif ($null -ne $t -and [string]$t.outcome -eq 'ok' -and $f.cause -eq 'healthy' -and $null -eq $t.certificate) {
        $f.confidence = 0.7
    }
    return $f
}

function Get-RdpClientVerdict {
    # Evidence (Invoke-RdpClientDiagnose's) to the verdict: scripts/lib/rdp-verdict.ts verdictOf's
    # network rules over Get-RdpClientFinding (a timed-out connect with other connects answered is
    # an unstable path; a networkish failure on a lossy or slow path is the path; the path MTU
    # confirms or clears a lost TLS flight; a healthy server on a lossy or slow path is an unstable
    # path), then the recipe, next commands and notes of -Fix and which clients connect. Pure.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Evidence, [Parameter(Mandatory = $true)]$Fix)
    $f = Get-RdpClientFinding -Evidence $Evidence
    $lines = @(Get-RdpClientEvidence -Evidence $Evidence)
    $notes = @()
    $s = $Evidence.sample
    $rc = $Evidence.recheck
    $m = $Evidence.pathMtu
    $maxRtt = [double]$Evidence.thresholds.maxRttMs
    $maxLost = [int]$Evidence.thresholds.maxLost
    $endpoint = Get-RdpEndpointText -HostName $Evidence.host -Port $Evidence.port
    $burstOnly = ($null -ne $s -and $s.lost -gt 0 -and $null -ne $rc -and $rc.lost -eq 0 -and $rc.answered -gt 0)
    $pathLost = 0
    $attempts = 0
    if ($null -ne $s) {
        $attempts = $s.attempts
        if (-not $burstOnly) { $pathLost = $s.lost }
    }
    if ($null -ne $rc) {
        $attempts += $rc.attempts
        if (-not $burstOnly) { $pathLost += $rc.lost }
    }
    if ($burstOnly) { $notes += ('{0} of {1} connects sent {2} ms apart needed a SYN retransmit, but all {3} sent {4} ms apart were answered at once: the server''s listen queue overflows when connections arrive in a burst (a busy server, or a small backlog), not loss on the path' -f $s.lost, $s.attempts, $s.intervalMs, $rc.attempts, $rc.intervalMs) }
    $lossy = $pathLost -ge $maxLost
    $someLost = $pathLost -ge 1
    $slow = ($null -ne $s -and $null -ne $s.rtt -and [double]$s.rtt.p50 -ge $maxRtt)
    $mtuKnown = ($null -ne $m -and $m.status -eq 'done' -and $null -ne $m.pathMtu -and $null -ne $m.interfaceMtu)
    $mtuSmaller = ($mtuKnown -and [int]$m.pathMtu -lt [int]$m.interfaceMtu)
    $mtuFull = ($mtuKnown -and [int]$m.pathMtu -ge [int]$m.interfaceMtu)
    $lossText = ''
    if ($null -ne $s) { $lossText = ('{0} of {1} connects lost' -f $pathLost, $attempts) }
    $slowText = ''
    if ($null -ne $s -and $null -ne $s.rtt) { $slowText = ('median connect time {0} ms (threshold {1} ms)' -f $s.rtt.p50, $maxRtt) }
    $unstable = @()
    if ($lossy) { $unstable += $lossText }
    if ($slow) { $unstable += $slowText }
    $why = @()
    if ($lossy -or ($someLost -and $f.networkish)) { $why += $lossText }
    if ($slow) { $why += $slowText }
    $tcp = ''
    if ($null -ne $Evidence.handshake) { $tcp = [string]$Evidence.handshake.tcp.outcome }
    if ($tcp -eq 'timeout') {
        if ($null -ne $s -and $s.answered -gt 0) { $f.cause = 'unstable-network'; $f.confidence = 0.85; $f.summary = ('connects time out intermittently: the probe''s connect timed out, {0} of {1} sample connects were answered' -f $s.answered, $s.attempts) }
        elseif ($null -ne $s) { $f.cause = 'unreachable'; $f.confidence = 0.9; $f.summary = ('no connect was answered (the probe''s and {0} more): SYNs to port {1} are dropped (firewall, NSG, VPN) or the host is down' -f ($s.attempts - 1), $Evidence.port) }
    } elseif ($f.networkish -and ($lossy -or $someLost -or $slow)) {
        $notes += ('the probe''s failure ({0}) is what a lossy or slow path produces' -f $f.summary)
        $f.cause = 'unstable-network'
        $f.confidence = 0.7
        if ($lossy -or $slow) { $f.confidence = 0.85 }
        $f.summary = ('the path to {0} is unstable: {1}' -f $endpoint, ($why -join ', '))
    } elseif ($f.flightLost -and $f.cause -eq 'mtu-blackhole') {
        if ($mtuSmaller -and $f.confidence -lt 0.9) { $f.confidence = 0.85; $f.summary = ('small packets pass but the server''s TLS flight never arrives, and the path MTU is {0} < {1}: a path-MTU black hole' -f $m.pathMtu, $m.interfaceMtu) }
        elseif ($mtuFull -and $f.confidence -lt 0.9) { $f.cause = 'certificate-key-unusable'; $f.confidence = 0.5; $f.summary = 'the server chose TLS and never answered our ClientHello although full-size packets pass the path: a hung TLS stack or unusable key' }
    } elseif ($f.cause -eq 'healthy' -and ($lossy -or $slow)) {
        $f.cause = 'unstable-network'
        $f.confidence = 0.8
        $f.summary = ('RDP answers, but the path to {0} is unstable: {1}' -f $endpoint, ($unstable -join ', '))
    } elseif ($f.cause -eq 'healthy' -and $burstOnly) {
        $f.confidence = [Math]::Min($f.confidence, 0.9)
    } elseif ($f.cause -eq 'healthy' -and $someLost) {
        $f.confidence = 0.7
        $notes += ('{0}: light loss on the path (below the threshold of {1})' -f $lossText, $maxLost)
    } elseif ($lossy -or $slow) {
        $notes += ('also: the path is unstable ({0})' -f ($unstable -join ', '))
    }
    if ($mtuSmaller -and $f.cause -ne 'mtu-blackhole') {
        if ($someLost) { $notes += ('the DF-ping path MTU ({0}) is below the interface MTU ({1}), but on a path that loses packets a lost ping looks like a too-big one: measure again once the loss is fixed' -f $m.pathMtu, $m.interfaceMtu) }
        else { $notes += ('the path MTU ({0}) is smaller than the interface MTU ({1}): large packets rely on ICMP "fragmentation needed" getting through' -f $m.pathMtu, $m.interfaceMtu) }
    }
    $compatibility = @(Get-RdpClientCompatibility -Evidence $Evidence -Cause $f.cause -Summary $f.summary)
    $clients = Get-RdpClientsLine -Compatibility $compatibility
    $summary = $f.summary
    if ($f.cause -eq 'healthy' -and $clients -like 'NLA required*') { $summary = ('{0}; {1}' -f $f.summary, $clients) }
    $entry = $Fix[$f.cause]
    return [ordered]@{
        cause = $f.cause
        confidence = [Math]::Round([double]$f.confidence, 2)
        summary = $summary
        evidence = @($lines + $notes)
        recipe = $entry.recipe
        next = @($entry.next)
        notes = @($entry.notes)
        compatibility = $compatibility
        clients = $clients
    }
}

function Get-RdpClientEvidence {
    # The evidence lines: the lookup, the connect, the negotiation, TLS and the certificate, the
    # connect sample, the re-check and the path-MTU check.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Evidence)
    $out = @()
    $endpoint = Get-RdpEndpointText -HostName $Evidence.host -Port $Evidence.port
    $h = $Evidence.handshake
    if ($null -eq $h) {
        $out += ('DNS lookup of {0} failed after {1} ms: {2}; nothing was sent to the host' -f $Evidence.host, $Evidence.dns.ms, $Evidence.dns.error)
    } else {
        $via = ''
        if ($Evidence.address -ne $Evidence.host) { $via = (' ({0})' -f $Evidence.address) }
        switch ([string]$h.tcp.outcome) {
            'connected' { $out += ('TCP connect to {0}{1}: accepted in {2} ms' -f $endpoint, $via, $h.tcp.ms) }
            'refused' { $out += ('TCP connect to {0}: refused (RST) in {1} ms: nothing listens on port {2}' -f $endpoint, $h.tcp.ms, $Evidence.port) }
            'timeout' { $out += ('TCP connect to {0}: no answer within {1} ms (SYN dropped or host down)' -f $endpoint, $h.tcp.ms) }
            default { $out += ('TCP connect to {0}: {1} ({2})' -f $endpoint, $h.tcp.outcome, $h.tcp.error) }
        }
        $n = $h.negotiation
        if ($null -ne $n) {
            $asked = 'X.224: asked for SSL|HYBRID|HYBRID_EX'
            switch ([string]$n.outcome) {
                'response' { $out += ('{0}; server selected protocol {1} in {2} ms' -f $asked, $n.selectedProtocol, $n.ms) }
                'failure' { $out += ('{0}; server answered RDP_NEG_FAILURE {1}' -f $asked, $n.failureCode) }
                'no-negotiation' { $out += ('{0}; server answered without negotiation data (Standard RDP Security only)' -f $asked) }
                'not-x224' { $out += ('{0}; the answer is not X.224 ({1}): {2}' -f $asked, $n.reason, $n.firstBytes) }
                'timeout' { $out += ('{0}; no answer within {1} ms ({2} bytes)' -f $asked, $n.ms, $n.bytes) }
                default { $out += ('{0}; {1} {2}' -f $asked, $n.outcome, $n.error) }
            }
        }
        $t = $h.tls
        if ($null -ne $t) {
            if ([string]$t.outcome -eq 'ok') { $out += ('TLS ({0} offered): {1} {2} completed in {3} ms' -f $t.offered, $t.protocol, $t.cipher, $t.ms) }
            else { $out += ('TLS ({0} offered): {1} {2}{3} after {4} ms' -f $t.offered, $t.outcome, $t.alert, $t.error, $t.ms) }
            if ($null -ne $t.certificate) { $out += ('certificate: {0}, issued by {1}, valid {2} to {3}, thumbprint {4}' -f $t.certificate.subject, $t.certificate.issuer, $t.certificate.notBefore, $t.certificate.notAfter, $t.certificate.thumbprint) }
        }
        $out += 'connections used by the probe: 1'
    }
    foreach ($pair in @(@('connect sample', $Evidence.sample), @('re-check, paced', $Evidence.recheck))) {
        $s = $pair[1]
        if ($null -eq $s) { continue }
        $rtt = ''
        if ($null -ne $s.rtt) { $rtt = ('; prompt connect times min/p50/p95/max {0}/{1}/{2}/{3} ms, jitter {4} ms' -f $s.rtt.min, $s.rtt.p50, $s.rtt.p95, $s.rtt.max, $s.rtt.jitter) }
        $out += ('{0}: {1} connects {2} ms apart: {3} answered ({4} refused), {5} lost{6}' -f $pair[0], $s.attempts, $s.intervalMs, $s.answered, $s.refused, $s.lost, $rtt)
    }
    if ($null -eq $Evidence.sample -and $Evidence.sampleSkipped) { $out += ('connect sample skipped: {0}' -f $Evidence.sampleSkipped) }
    $m = $Evidence.pathMtu
    if ($null -ne $m) {
        if ($m.status -ne 'done') { $out += ('path-MTU check {0}: {1}' -f $m.status, $m.reason) }
        elseif ($null -eq $m.pathMtu) { $out += ('path-MTU check to {0} (interface {1} MTU {2}): no conclusion ({3})' -f $m.host, $m.interface, $m.interfaceMtu, $m.reason) }
        else { $out += ('path-MTU check (DF pings): {0} bytes to {1} (interface {2} MTU {3}, {4} probes, {5} ms)' -f $m.pathMtu, $m.host, $m.interface, $m.interfaceMtu, $m.probes, $m.ms) }
    }
    return $out
}

function Get-RdpTlsOutcome {
    # Whether a client that speaks TLS 1.2 gets through the TLS handshake: true, false, or $null
    # when none was tried. A handshake completed only as TLS 1.0 or 1.1 (we offer 1.0-1.2) fails
    # for a modern client, which is what tls-version-mismatch says.
    [CmdletBinding()]
    param($Tls)
    if ($null -eq $Tls) { return $null }
    return ([string]$Tls.outcome -eq 'ok' -and @('Tls', 'Tls11') -notcontains [string]$Tls.protocol)
}

function Get-RdpClientCompatibility {
    # scripts/lib/rdp-verdict.ts compatibilityOf for what one request (SSL|HYBRID|HYBRID_EX) and its
    # TLS handshake show: no follow-ups or client checks, so what only they can tell stays $null.
    # One entry per client profile: default, nla, tls, rdp, validating.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Evidence, [Parameter(Mandatory = $true)][string]$Cause, [string]$Summary = '')
    $profiles = @('default', 'nla', 'tls', 'rdp', 'validating')
    if ($Cause -eq 'unstable-network') { return @($profiles | ForEach-Object -Process { [ordered]@{ client = $_; connects = $null; why = ('the path is unstable ({0}): any client may or may not get through' -f $Summary) } }) }
    $h = $Evidence.handshake
    $n = $null
    if ($null -ne $h) { $n = $h.negotiation }
    if ($null -eq $n -or [string]$h.tcp.outcome -ne 'connected' -or @('response', 'failure', 'no-negotiation') -notcontains [string]$n.outcome) {
        return @($profiles | ForEach-Object -Process { [ordered]@{ client = $_; connects = $false; why = ('no client gets an RDP answer: {0}' -f $Summary) } })
    }
    $tls = Get-RdpTlsOutcome -Tls $h.tls
    $notAsked = 'not asked: the pasted diagnosis makes one request'
    $sel = $null
    if ([string]$n.outcome -eq 'response') { $sel = [long]$n.selectedProtocol }
    $legacy = ([string]$n.outcome -eq 'no-negotiation' -or $sel -eq 0)
    $code = -1
    if ([string]$n.outcome -eq 'failure') { $code = [int]$n.failureCode }
    $hybrid = ($null -ne $sel -and ($sel -band 10) -ne 0)
    $ssl = ($null -ne $sel -and ($sel -band 1) -ne 0)
    $o = [ordered]@{}
    # rdp: Standard RDP Security only.
    if ($legacy) { $o.rdp = @($true, 'the server answers with Standard RDP Security') }
    elseif ($code -eq 5 -or $code -eq 6) { $o.rdp = @($false, 'the server requires CredSSP: Standard RDP Security is refused') }
    else { $o.rdp = @($null, $notAsked) }
    # nla: CredSSP only.
    if ($hybrid) { $o.nla = @($tls, 'the server chose CredSSP (NLA) over TLS; this is the TLS handshake''s outcome') }
    elseif ($legacy) { $o.nla = @($false, 'Standard RDP Security only: a CredSSP-only client gives up') }
    elseif ($code -eq 2 -or $code -eq 3) { $o.nla = @($false, 'CredSSP runs over TLS, which the server refuses') }
    elseif ($sel -eq 1 -and $tls -eq $false) { $o.nla = @($false, 'CredSSP runs over TLS, and the TLS handshake fails') }
    else { $o.nla = @($null, $notAsked) }
    # tls: TLS only.
    if ($null -ne $sel -and -not $hybrid -and $ssl) { $o.tls = @($tls, 'the server chose TLS; this is the TLS handshake''s outcome') }
    elseif ($legacy) { $o.tls = @($false, 'Standard RDP Security only: a TLS-only client gives up') }
    elseif ($hybrid) { $o.tls = @($null, $notAsked) }
    elseif (@(2, 3, 5, 6) -contains $code) { $o.tls = @($false, ('the server refuses TLS without more (RDP_NEG_FAILURE {0})' -f $code)) }
    else { $o.tls = @($null, 'the server''s answer does not say') }
    # default: the first request, then its fall-backs after a refusal.
    $via = $null
    if ([string]$n.outcome -ne 'failure') {
        if ($legacy) { $o.default = @($true, 'Standard RDP Security'); $via = 'rdp' }
        elseif ($hybrid) { $o.default = @($tls, 'CredSSP (NLA) over TLS') }
        elseif ($ssl) { $o.default = @($tls, 'TLS') }
        else { $o.default = @($null, ('the server chose protocol {0}' -f $sel)) }
    } elseif ($o.tls[0] -eq $true) { $o.default = $o.tls }
    elseif ($o.rdp[0] -eq $true) { $o.default = $o.rdp; $via = 'rdp' }
    elseif ($o.tls[0] -eq $false -and $o.rdp[0] -eq $false) { $o.default = @($false, 'refused, and its fall-backs (TLS only, Standard RDP Security) are refused too') }
    else { $o.default = @($null, 'refused; whether a fall-back gets in was not asked') }
    # validating: the default client that requires a certificate it trusts.
    $c = $null
    if ($null -ne $h.tls) { $c = $h.tls.certificate }
    if ($o.default[0] -eq $false) { $o.validating = @($false, 'the default client fails already') }
    elseif ($via -eq 'rdp') { $o.validating = @($false, 'Standard RDP Security has no certificate to check') }
    elseif ($null -eq $o.default[0]) { $o.validating = @($null, $o.default[1]) }
    elseif ($null -eq $c) { $o.validating = @($null, 'the certificate could not be read') }
    elseif ([datetime]::Parse([string]$c.notAfter, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal) -lt [datetime]::Parse([string]$h.checked, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)) { $o.validating = @($false, ('the certificate expired on {0}' -f $c.notAfter)) }
    elseif ([datetime]::Parse([string]$c.notBefore, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal) -gt [datetime]::Parse([string]$h.checked, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)) { $o.validating = @($false, ('the certificate is not valid before {0}' -f $c.notBefore)) }
    else { $o.validating = @($null, ('{0}: it connects only where this certificate is trusted and its name matches the name the client uses' -f $c.subject)) }
    $out = @()
    foreach ($p in $profiles) { $out += [ordered]@{ client = $p; connects = $o[$p][0]; why = $o[$p][1] } }
    return $out
}

function Get-RdpClientsLine {
    # scripts/lib/rdp-verdict.ts clientsLine: which clients connect, in one line.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][object[]]$Compatibility)
    $by = @{}
    foreach ($c in $Compatibility) { $by[$c.client] = $c.connects }
    if ($by['default'] -eq $true -and $by['nla'] -eq $true -and $by['tls'] -eq $false -and $by['rdp'] -eq $false) { return 'NLA required: clients without CredSSP fail' }
    if ($by['default'] -eq $true -and $by['rdp'] -eq $true -and $by['tls'] -eq $false -and $by['nla'] -eq $false) { return 'Standard RDP Security only: clients that require TLS or NLA fail; a default client falls back and connects' }
    if (@($Compatibility | Where-Object -FilterScript { $_.connects -ne $false }).Count -eq 0) { return 'no client connects' }
    if (@($Compatibility | Where-Object -FilterScript { $null -ne $_.connects }).Count -eq 0) { return 'which clients connect cannot be told' }
    $parts = @()
    $yes = @($Compatibility | Where-Object -FilterScript { $_.connects -eq $true } | ForEach-Object -Process { $_.client })
    $no = @($Compatibility | Where-Object -FilterScript { $_.connects -eq $false } | ForEach-Object -Process { $_.client })
    $unknown = @($Compatibility | Where-Object -FilterScript { $null -eq $_.connects } | ForEach-Object -Process { $_.client })
    if ($yes.Count) { $parts += ('connect: {0}' -f ($yes -join ', ')) }
    if ($no.Count) { $parts += ('fail: {0}' -f ($no -join ', ')) }
    if ($unknown.Count) { $parts += ('cannot tell: {0}' -f ($unknown -join ', ')) }
    return ($parts -join '; ')
}

function Write-RdpVerdictText {
    # The verdict for humans, before the JSON line: verdict first, then the evidence, then the fix.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Result)
    if (-not $Result.Contains('cause')) { return }
    $mark = 'PROBLEM'
    if ($Result.cause -eq 'healthy') { $mark = 'OK' }
    Write-Output ('[{0}] {1}: {2} (confidence {3})' -f $mark, $Result.endpoint, $Result.cause, ([double]$Result.confidence).ToString('0.00', [System.Globalization.CultureInfo]::InvariantCulture))
    Write-Output ('  {0}' -f $Result.summary)
    if (-not ([string]$Result.summary).EndsWith([string]$Result.clients)) { Write-Output ('  Clients: {0}' -f $Result.clients) }
    foreach ($e in @($Result.evidence)) { Write-Output ('  - {0}' -f $e) }
    if (@($Result.next).Count -gt 0) {
        Write-Output ''
        if ($Result.recipe) { Write-Output ('Fix (recipe {0}), from a workstation with rdpfix:' -f $Result.recipe) } else { Write-Output 'Next:' }
        foreach ($x in @($Result.next)) { Write-Output ('  {0}' -f $x) }
    }
    foreach ($x in @($Result.notes)) { Write-Output ('  - {0}' -f $x) }
}
