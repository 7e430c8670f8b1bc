# sessions.ps1: The signed-in sessions (WTS API) and the rule that a restart must not disconnect them unasked.
# requires: windows

function Get-RdpSession {
    # Sessions with a signed-in user (id, user, state, client), from the WTS API; the caller's own
    # session id (0 over WinRM, SSH and Run Command). Never throws: an error is reported instead.
    [CmdletBinding()]
    param([int]$TimeoutSeconds = 15)
    $info = [ordered]@{ own = Get-RdpOwnSessionId; count = 0; list = @(); error = $null }
    try {
        $signedIn = @(Get-RdpWtsSession -TimeoutSeconds $TimeoutSeconds | Where-Object -FilterScript { $_.User })
        $info.count = $signedIn.Count
        $info.list = @($signedIn | Select-Object -First 8 | ForEach-Object -Process { [ordered]@{ id = $_.Id; user = $_.User; state = $_.State; client = $_.Client; station = $_.Station } })
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
}
