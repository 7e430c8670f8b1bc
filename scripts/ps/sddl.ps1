# sddl.ps1: Security descriptors: the access rule rdpfix's lib/sddl.ts re-checks, and comparing two in Windows'
# canonical form (reading, writing and parsing them is windows.ps1's).
# requires: windows

function Test-RdpSddlAccess {
    # Does the descriptor grant every bit of Mask to one of Sid (grants add up across entries) with
    # no deny overlapping it? The same rule as rdpfix's lib/sddl.ts checkAccess, which re-checks the
    # descriptors this script returns.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][AllowEmptyString()][string]$Sddl,
        [Parameter(Mandatory = $true)][string[]]$Sid,
        [Parameter(Mandatory = $true)][int]$Mask
    )
    if (-not $Sddl) { return $false }
    $parsed = ConvertFrom-RdpSddl -Sddl $Sddl
    if (-not $parsed.daclPresent) { return $true }
    $allowed = 0
    foreach ($entry in @($parsed.entries)) {
        if ($Sid -notcontains $entry.sid) { continue }
        if ($entry.type -like '*Denied*' -and ($entry.mask -band $Mask)) { return $false }
        if ($entry.type -eq 'AccessAllowed') { $allowed = $allowed -bor $entry.mask }
    }
    return (($allowed -band $Mask) -eq $Mask)
}

function Test-RdpSameSecurity {
    # Same owner and DACL, compared in Windows' own canonical SDDL rendering.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Sddl, [Parameter(Mandatory = $true)][string]$Reference)
    $left = ConvertTo-RdpCanonicalSddl -Sddl $Sddl
    $right = ConvertTo-RdpCanonicalSddl -Sddl $Reference
    return ($left -eq $right)
}
