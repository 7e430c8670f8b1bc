# registry.ps1: Registry values, read so that "not set" differs from 0.

function Get-RdpRegistryValue {
    # The values present under one key, by name. A value that is not set is left out, so "not set"
    # and 0 stay different (a policy value overrides only when it is actually there).
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string[]]$Name
    )
    $values = [ordered]@{}
    if (-not (Test-Path -LiteralPath $Path)) { return $values }
    $key = Get-Item -LiteralPath $Path
    foreach ($valueName in $Name) {
        $value = $key.GetValue($valueName, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        if ($null -ne $value) { $values[$valueName] = $value }
    }
    return $values
}
