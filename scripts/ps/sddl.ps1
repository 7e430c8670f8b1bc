# sddl.ps1: Security descriptors: read where Get-Acl refuses, write only the DACL, compare two in Windows' canonical form, and the access rule rdpfix's lib/sddl.ts re-checks.

function Get-RdpPathSddl {
    # Owner, group and DACL as SDDL, or $null. Uses .NET directly: Get-Acl needs to list the parent,
    # which a hardened MachineKeys folder refuses even when the file's own descriptor is readable.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [switch]$Directory
    )
    $sections = [System.Security.AccessControl.AccessControlSections]'Owner, Group, Access'
    try {
        if ($Directory) { $descriptor = [System.IO.Directory]::GetAccessControl($Path, $sections) }
        else { $descriptor = [System.IO.File]::GetAccessControl($Path, $sections) }
        return $descriptor.GetSecurityDescriptorSddlForm($sections)
    } catch {
        Write-Verbose -Message ('cannot read the security descriptor of {0}: {1}' -f $Path, $_.Exception.Message)
        return $null
    }
}

function Set-RdpPathSddl {
    # Replace only the DACL (and its protection flag) from an SDDL string; owner and SACL are kept.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Sddl,
        [switch]$Directory
    )
    $sections = [System.Security.AccessControl.AccessControlSections]::Access
    if ($PSCmdlet.ShouldProcess($Path, 'Set the access control list')) {
        if ($Directory) {
            $descriptor = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
            $descriptor.SetSecurityDescriptorSddlForm($Sddl, $sections)
            [System.IO.Directory]::SetAccessControl($Path, $descriptor)
        } else {
            $descriptor = New-Object -TypeName System.Security.AccessControl.FileSecurity
            $descriptor.SetSecurityDescriptorSddlForm($Sddl, $sections)
            [System.IO.File]::SetAccessControl($Path, $descriptor)
        }
    }
}

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
    $raw = New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl
    if ($null -eq $raw.DiscretionaryAcl) { return $true }
    $allowed = 0
    foreach ($entry in $raw.DiscretionaryAcl) {
        if ($entry -isnot [System.Security.AccessControl.KnownAce]) { continue }
        if ($Sid -notcontains $entry.SecurityIdentifier.Value) { continue }
        $type = $entry.AceType.ToString()
        if ($type -like '*Denied*' -and ($entry.AccessMask -band $Mask)) { return $false }
        if ($type -eq 'AccessAllowed') { $allowed = $allowed -bor $entry.AccessMask }
    }
    return (($allowed -band $Mask) -eq $Mask)
}

function Test-RdpSameSecurity {
    # Same owner and DACL, compared in Windows' own canonical SDDL rendering.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Sddl, [Parameter(Mandatory = $true)][string]$Reference)
    $sections = [System.Security.AccessControl.AccessControlSections]'Owner, Access'
    $left = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Sddl).GetSddlForm($sections)
    $right = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $Reference).GetSddlForm($sections)
    return ($left -eq $right)
}
