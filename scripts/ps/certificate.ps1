# certificate.ps1: The Remote Desktop certificate's backup (public cert, store entry, key file), the restore
# commands a pasted script prints, and the undo that puts backed-up certificates back.
# requires: native, literal, backup, sddl, facts, result

function Backup-RdpCertificate {
    # Export the public certificate, reg-export its store entry (the certificate with its properties,
    # so a reg import restores the link to its key) and copy its key container file; every file is
    # checked before anything changes.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$Certificate,
        [Parameter(Mandatory = $true)][string]$Folder,
        [AllowNull()]$Key
    )
    $thumbprint = $Certificate.Thumbprint
    $record = [ordered]@{ thumbprint = $thumbprint; cer = ($thumbprint + '.cer'); reg = ($thumbprint + '.reg'); keyFile = $null; keyDir = $null; keySddl = $null; keyRemoved = $false }
    if ($PSCmdlet.ShouldProcess($thumbprint, 'Back up the certificate and its key')) {
        $files = @((Join-Path -Path $Folder -ChildPath $record.cer), (Join-Path -Path $Folder -ChildPath $record.reg))
        $null = Export-Certificate -Cert $Certificate -FilePath $files[0] -Type CERT
        $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', ('HKLM\SOFTWARE\Microsoft\SystemCertificates\Remote Desktop\Certificates' + '\' + $thumbprint), $files[1], '/y')
        if ($null -ne $Key -and $Key.file) {
            $record.keyFile = Split-Path -Path $Key.file -Leaf
            $record.keyDir = Split-Path -Path $Key.file -Parent
            $record.keySddl = $Key.sddl
            Copy-RdpFile -Source $Key.file -Destination $Folder
            $files += Join-Path -Path $Folder -ChildPath $record.keyFile
        }
        Assert-RdpBackupFile -Path $files
    }
    return $record
}

function Get-RdpCertRestoreLine {
    # The commands an administrator can paste on this server to put backed-up certificates back
    # (what rdpfix's undo does): remove the certificate Windows created since, copy a removed key
    # back, reg import each store entry (certificate and link to its key) and the pin, restart.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Folder,
        [object[]]$Record = @(),
        [AllowEmptyString()][string]$PinFile = '',
        [string[]]$NewThumbprint = @()
    )
    $lines = @()
    $old = @($Record | ForEach-Object -Process { $_.thumbprint })
    foreach ($thumbprint in @($NewThumbprint | Where-Object -FilterScript { $_ -and $old -notcontains $_ })) {
        $lines += ('Remove-Item -LiteralPath {0}' -f (ConvertTo-RdpLiteral -Value (Join-Path -Path 'Cert:\LocalMachine\Remote Desktop' -ChildPath $thumbprint)))
    }
    foreach ($item in $Record) {
        if ($item.keyRemoved -and $item.keyFile -and $item.keyDir) {
            $lines += ('Copy-Item -LiteralPath {0} -Destination {1}' -f (ConvertTo-RdpLiteral -Value (Join-Path -Path $Folder -ChildPath $item.keyFile)), (ConvertTo-RdpLiteral -Value $item.keyDir))
        }
        $lines += ('reg.exe import {0}' -f (ConvertTo-RdpLiteral -Value (Join-Path -Path $Folder -ChildPath $item.reg)))
    }
    if ($PinFile) { $lines += ('reg.exe import {0}' -f (ConvertTo-RdpLiteral -Value $PinFile)) }
    $lines += 'Restart-Service -Name ''TermService'' -Force'
    return $lines
}

function Restore-RdpCertificate {
    # Undo of a regeneration (the restart-termserv-undo step; clear-machinekeys' folder undo calls it
    # too): put the backed-up store entries (and key files, ACLs, pin) back, after backing up and
    # removing the certificates Windows created since (into the default backup root); restart and verify.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$BackupPath,
        [object[]]$Certificates = @(),
        [AllowEmptyString()][string]$Unpinned = '',
        [int]$TimeoutSeconds = 60
    )
    $port = Get-RdpPort
    $result = [ordered]@{ step = 'restart-termserv-undo'; status = 'failed'; error = $null; before = Get-RdpCertificateState; after = $null; backup = $null; restored = @(); problems = @() }
    try {
        $files = @()
        foreach ($item in $Certificates) {
            $files += Join-Path -Path $BackupPath -ChildPath $item.reg
            if ($item.keyRemoved) { $files += Join-Path -Path $BackupPath -ChildPath $item.keyFile }
        }
        Assert-RdpBackupFile -Path $files
        $wanted = @($Certificates | ForEach-Object -Process { $_.thumbprint })
        $missing = @($wanted | Where-Object -FilterScript { -not (Test-Path -LiteralPath (Join-Path -Path 'Cert:\LocalMachine\Remote Desktop' -ChildPath $_)) })
        if ($missing.Count -eq 0 -and (-not $Unpinned -or $result.before.pinned -eq $Unpinned)) {
            $result.status = 'ok'
            $result.after = $result.before
            return $result
        }
        if ($PSCmdlet.ShouldProcess('Cert:\LocalMachine\Remote Desktop', ('Restore the certificate(s) from {0}' -f $BackupPath))) {
            $folder = New-RdpBackupFolder -Step 'undo-restart-termserv'
            $result.backup = $folder
            if (Test-Path -LiteralPath 'Cert:\LocalMachine\Remote Desktop') {
                foreach ($item in @(Get-ChildItem -LiteralPath 'Cert:\LocalMachine\Remote Desktop' | Where-Object -FilterScript { $wanted -notcontains $_.Thumbprint })) {
                    $null = Backup-RdpCertificate -Certificate $item -Folder $folder -Key (Get-RdpKeyFile -Certificate $item)
                    Remove-Item -LiteralPath (Join-Path -Path 'Cert:\LocalMachine\Remote Desktop' -ChildPath $item.Thumbprint) -Confirm:$false
                }
            }
            foreach ($item in $Certificates) {
                if ($item.keyRemoved -and $item.keyDir) {
                    $keyPath = Join-Path -Path $item.keyDir -ChildPath $item.keyFile
                    Copy-RdpFile -Source (Join-Path -Path $BackupPath -ChildPath $item.keyFile) -Destination $item.keyDir
                    if ($item.keySddl) {
                        Set-RdpPathSddl -Path $keyPath -Sddl $item.keySddl
                        $owner = (New-Object -TypeName System.Security.AccessControl.RawSecurityDescriptor -ArgumentList $item.keySddl).Owner
                        if ($null -ne $owner) { $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($keyPath, '/setowner', ('*' + $owner.Value)) }
                    }
                }
                $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('import', (Join-Path -Path $BackupPath -ChildPath $item.reg))
                $result.restored += $item.thumbprint
            }
            if ($Unpinned) {
                $bytes = [byte[]]@(for ($i = 0; $i -lt $Unpinned.Length; $i += 2) { [Convert]::ToByte($Unpinned.Substring($i, 2), 16) })
                $null = New-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'SSLCertificateSHA1Hash' -PropertyType Binary -Value $bytes -Force
            }
            Restart-Service -Name 'TermService' -Force -Confirm:$false
            try {
                (Get-Service -Name 'TermService').WaitForStatus('Running', [TimeSpan]::FromSeconds($TimeoutSeconds))
            } catch {
                $result.problems += ('TermService did not reach Running within {0} s' -f $TimeoutSeconds)
            }
            if (@(Wait-RdpListener -Port $port -TimeoutSeconds $TimeoutSeconds).Count -eq 0) { $result.problems += ('nothing listens on port {0}' -f $port) }
            $result.after = Get-RdpCertificateState
            foreach ($thumbprint in $wanted) {
                if (-not (Test-Path -LiteralPath (Join-Path -Path 'Cert:\LocalMachine\Remote Desktop' -ChildPath $thumbprint))) { $result.problems += ('{0} is not back in the store' -f $thumbprint) }
            }
            if ($Unpinned -and $result.after.pinned -ne $Unpinned) { $result.problems += 'the SSLCertificateSHA1Hash pin was not restored' }
            Set-RdpStepOutcome -Result $result
        } else {
            $result.status = 'would-change'
        }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    return $result
}
