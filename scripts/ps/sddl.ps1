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

function Get-RdpBackupAclProblem {
    # What makes a descriptor wider than a backup's (SYSTEM and Administrators only), one line each: an allow
    # entry for any other SID (inherit-only ones too: they reach what is created inside), no DACL at all, and
    # (-Protected, for a folder rdpfix owns) a DACL that still inherits from its parent. Nothing when it is tight.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Sddl, [switch]$Protected)
    if (-not $Sddl) { return @('its security descriptor cannot be read') }
    $parsed = ConvertFrom-RdpSddl -Sddl $Sddl
    if (-not $parsed.daclPresent) { return @('it has no DACL (full access for everyone)') }
    $problems = @()
    foreach ($entry in @($parsed.entries)) {
        if ($entry.type -like '*Allowed*' -and @('S-1-5-18', 'S-1-5-32-544') -notcontains $entry.sid) { $problems += ('{0} is granted 0x{1:x}' -f $entry.sid, $entry.mask) }
    }
    if ($Protected) {
        $flags = [regex]::Match($Sddl, 'D:(?<f>[A-Z]*)')
        if (-not $flags.Success -or -not $flags.Groups['f'].Value.Contains('P')) { $problems += 'its DACL inherits from the parent folder' }
    }
    return $problems
}
