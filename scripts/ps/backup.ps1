# backup.ps1: The timestamped backup folder on the target and the copies made into it.
# requires: windows

function New-RdpBackupFolder {
    # C:\ProgramData\rdpfix\backup\<yyyyMMdd-HHmmss-fff>-<step>, created before anything changes.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [AllowEmptyString()][string]$Root = '',
        [Parameter(Mandatory = $true)][string]$Step
    )
    if (-not $Root) { $Root = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\backup' }
    $path = Join-Path -Path $Root -ChildPath ('{0}-{1}' -f (Get-Date).ToString('yyyyMMdd-HHmmss-fff'), $Step)
    if ($PSCmdlet.ShouldProcess($path, 'Create the backup folder')) {
        $null = New-Item -ItemType Directory -Path $path -Force
    }
    return $path
}

function Copy-RdpFile {
    # Copy one file into a folder; when its ACL refuses even this account a read (the broken-key
    # case), fall back to robocopy /B, which reads with the backup privilege.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Source,
        [Parameter(Mandatory = $true)][string]$Destination
    )
    if ($PSCmdlet.ShouldProcess($Source, ('Copy to {0}' -f $Destination))) {
        try {
            Copy-Item -LiteralPath $Source -Destination $Destination -Force
        } catch {
            Write-Verbose -Message ('Copy-Item failed ({0}); retrying with robocopy /B' -f $_.Exception.Message)
            $null = Invoke-RdpNative -FilePath 'robocopy.exe' -ArgumentList @((Split-Path -Path $Source -Parent), $Destination, (Split-Path -Path $Source -Leaf), '/B', '/COPY:DAT', '/R:0', '/W:0', '/NP', '/NJH', '/NJS') -MaxExitCode 7
        }
    }
}

function Assert-RdpBackupFile {
    # Refuse to continue when a backup file is missing or empty: nothing may change without it.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string[]]$Path)
    foreach ($file in $Path) {
        if (-not (Test-Path -LiteralPath $file -PathType Leaf) -or (Get-Item -LiteralPath $file).Length -eq 0) {
            throw ('backup failed: {0} was not written; nothing was changed' -f $file)
        }
    }
}
