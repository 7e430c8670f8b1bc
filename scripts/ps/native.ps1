# native.ps1: Native programs (icacls, reg, robocopy, netsh) without Windows PowerShell 5.1 turning their stderr into a terminating error.

function Invoke-RdpNative {
    # Runs a native program with an argument array and returns its output lines; a non-zero exit
    # code is an error naming the program and the last lines it printed.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][ValidateSet('icacls.exe', 'reg.exe', 'robocopy.exe', 'netsh.exe')][string]$FilePath,
        [Parameter(Mandatory = $true)][string[]]$ArgumentList,
        [int]$MaxExitCode = 0
    )
    $ErrorActionPreference = 'Continue'
    $output = @(& $FilePath @ArgumentList 2>&1 | ForEach-Object -Process { [string]$_ })
    if ($LASTEXITCODE -gt $MaxExitCode -or $LASTEXITCODE -lt 0) {
        throw ('{0} {1} failed with exit code {2}: {3}' -f $FilePath, $ArgumentList[0], $LASTEXITCODE, (($output | Select-Object -Last 3) -join ' '))
    }
    return $output
}
