# composite.ps1: what a pasted recipe stage (run-recipe --emit) runs around its steps: read each
# step's JSON result from its output, and print one summary line last that fits Azure Run Command's
# 4,096-byte tail (at most 2,000 bytes, so Intune's 2,048 characters too); between the steps, the
# in-server handshake check (handshake.ps1) decides whether the next fix is needed.
# requires: handshake

function Get-RdpStepResult {
    # The step's JSON result is the line before the last end marker of its output.
    [CmdletBinding()]
    param([object[]]$Output, [string]$Id)
    $r = [ordered]@{ id = $Id; status = 'failed' }
    $end = -1
    for ($i = $Output.Count - 1; $i -ge 0; $i--) {
        if ([string]$Output[$i] -eq '##rdpfix-result-end##') { $end = $i; break }
    }
    if ($end -lt 1) { $r.error = 'the step printed no result'; return $r }
    try { $j = [string]$Output[$end - 1] | ConvertFrom-Json } catch { $r.error = 'the step result is not JSON'; return $r }
    if ($j.PSObject.Properties['status']) { $r.status = [string]$j.status }
    if ($j.PSObject.Properties['cause'] -and $j.cause) { $r.cause = [string]$j.cause }
    # A refusal (signed-in users without -DisconnectSessions, a pinned certificate) waits for the
    # admin's decision: on_failure: continue does not go past it.
    if ($j.PSObject.Properties['refused'] -and $j.refused) { $r.refused = [string]$j.refused }
    foreach ($k in @('error', 'backup', 'restore')) {
        if ($j.PSObject.Properties[$k] -and $j.$k) { $r[$k] = (@($j.$k) | ForEach-Object -Process { [string]$_ }) -join ' ; ' }
    }
    return $r
}

function Write-RdpSummary {
    # One JSON line of at most MaxBytes bytes, whatever the steps said: details are cut shorter
    # until it fits; every step's id and status always stay.
    [CmdletBinding()]
    param([object[]]$Steps, [System.Collections.IDictionary]$Head, [int]$MaxBytes = 2000)
    $line = ''
    foreach ($keep in @(600, 200, 60, 0)) {
        $list = @(foreach ($s in $Steps) {
            $o = [ordered]@{ id = $s.id; status = $s.status }
            if ($s.Contains('cause') -and $s.cause) { $o.cause = [string]$s.cause }
            if ($keep -gt 0) {
                foreach ($k in @('reason', 'error', 'backup', 'restore')) {
                    if ($s.Contains($k)) {
                        $v = [string]$s[$k]
                        if ($v.Length -gt $keep) { $v = $v.Substring(0, $keep - 3) + '...' }
                        $o[$k] = $v
                    }
                }
            }
            $o
        })
        $doc = [ordered]@{}
        foreach ($k in $Head.Keys) { if ($k -ne 'next') { $doc[$k] = $Head[$k] } }
        $doc.steps = $list
        if ($Head.Contains('next')) {
            $doc.next = [string]$Head['next']
            if ($keep -eq 0 -and $doc.next.Length -gt 300) { $doc.next = $doc.next.Substring(0, 297) + '...' }
        }
        $line = $doc | ConvertTo-Json -Compress -Depth 5
        if ([System.Text.Encoding]::UTF8.GetByteCount($line) -le $MaxBytes) { break }
    }
    Write-Output $line
}

function Invoke-RdpRecipeCheck {
    # A check of the recipe that the server answers itself: its own RDP listener opened as a client
    # does (Invoke-RdpHandshakeCheck). Its cause is the step's outcome, as the client probe's is
    # for the runner; a check that cannot run at all is 'failed'.
    [CmdletBinding()]
    param([string]$Id)
    $r = [ordered]@{ id = $Id; status = 'failed'; cause = $null; detail = '' }
    try {
        $c = Invoke-RdpHandshakeCheck
        $r.status = 'ok'
        $r.cause = [string]$c.cause
        $r.detail = [string]$c.detail
    } catch {
        $r.error = $_.Exception.Message
    }
    return $r
}

function Test-RdpRecipeWhen {
    # A step's `when`: run only when an earlier step's outcome (its cause, else its status) is one
    # of the listed ones. -Reason gives the sentence that says why it was skipped.
    [CmdletBinding()]
    param($Step, [hashtable]$Outcome, [switch]$Reason)
    if ($null -eq $Step.When) { if ($Reason) { return '' } else { return $true } }
    $was = $null
    if ($Outcome.ContainsKey([string]$Step.When.Step)) { $was = $Outcome[[string]$Step.When.Step] }
    $met = ($null -ne $was) -and (@($Step.When.Is) -contains $was)
    if (-not $Reason) { return $met }
    $seen = 'not run'
    if ($null -ne $was) { $seen = [string]$was }
    return ('only when {0} is {1} (it was {2})' -f $Step.When.Step, (@($Step.When.Is) -join ' or '), $seen)
}
