# result.ps1: how a changing step ends: 'changed' when everything read back as planned, 'failed'
# with the problems otherwise, and 'failed' with the message when something threw (the partial
# result is kept, so what was already done is still reported and journaled).

function Set-RdpStepOutcome {
    # After the change: failed when the read-back found problems, changed otherwise.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result)
    if (@($Result['problems']).Count -gt 0) { $Result['status'] = 'failed' } else { $Result['status'] = 'changed' }
}

function Set-RdpStepFailure {
    # Something threw: failed, with its message; whatever the result already holds stays.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result, [Parameter(Mandatory = $true)]$ErrorRecord)
    $Result['status'] = 'failed'
    $Result['error'] = $ErrorRecord.Exception.Message
}
