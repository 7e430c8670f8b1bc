# literal.ps1: The psQuote rule in PowerShell, for text a script builds at run time (restore commands, the expiry task).

function ConvertTo-RdpLiteral {
    # A PowerShell single-quoted literal: every one of the five single-quote characters doubled (the
    # rule of rdpfix's psQuote), for the restore commands a run prints and the expiry task.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Value)
    return "'" + ($Value -replace "['\u2018\u2019\u201A\u201B]", '$0$0') + "'"
}
