# certificate.ps1: The Remote Desktop certificate's backup (public cert, store entry, key file), the restore
# commands a pasted script prints, and the undo that puts backed-up certificates back.
# requires: windows, literal, backup, sddl, facts, result

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
        Export-RdpCertificate -Certificate $Certificate -FilePath $files[0]
        $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', ('HKLM\SOFTWARE\Microsoft\SystemCertificates\Remote Desktop\Certificates' + '\' + $thumbprint), $files[1], '/y')
        if ($null -ne $Key -and $Key.file) {
            $record.keyFile = Split-Path -Path $Key.file -Leaf
            $record.keyDir = Split-Path -Path $Key.file -Parent
            $record.keySddl = $Key.sddl
            Copy-RdpBackupFile -Source $Key.file -Folder $Folder
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
        $lines += ('Remove-Item -LiteralPath {0}' -f (ConvertTo-RdpLiteral -Value ('Cert:\LocalMachine\Remote Desktop\' + $thumbprint)))
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
        [int]$TimeoutSeconds = 60,
        [switch]$StartUmRdpService
    )
    $port = Get-RdpPort
    $result = [ordered]@{ step = 'restart-termserv-undo'; status = 'failed'; error = $null; before = Get-RdpCertificateState; after = $null; backup = $null; restored = @(); problems = @() }
    try {
        $files = @()
        foreach ($item in $Certificates) {
            $files += Join-Path -Path $BackupPath -ChildPath $item.reg
            if ($item.keyRemoved) { $files += Join-Path -Path $BackupPath -ChildPath $item.keyFile }
        }
        # The backup being restored from may predate protected backups: its ACL is no reason to refuse the undo.
        Assert-RdpBackupFile -Path $files -SkipAclCheck
        $wanted = @($Certificates | ForEach-Object -Process { $_.thumbprint })
        $missing = @($wanted | Where-Object -FilterScript { @(Get-RdpStoreCertificate -Store 'Remote Desktop' -Thumbprint $_).Count -eq 0 })
        if ($missing.Count -eq 0 -and (-not $Unpinned -or $result.before.pinned -eq $Unpinned)) {
            $result.status = 'ok'
            $result.after = $result.before
            return $result
        }
        if ($PSCmdlet.ShouldProcess('Cert:\LocalMachine\Remote Desktop', ('Restore the certificate(s) from {0}' -f $BackupPath))) {
            $folder = New-RdpBackupFolder -Step 'undo-restart-termserv'
            $result.backup = $folder
            foreach ($item in @(Get-RdpStoreCertificate -Store 'Remote Desktop' | Where-Object -FilterScript { $wanted -notcontains $_.Thumbprint })) {
                $null = Backup-RdpCertificate -Certificate $item -Folder $folder -Key (Get-RdpKeyFile -Certificate $item)
                Remove-RdpStoreCertificate -Store 'Remote Desktop' -Thumbprint $item.Thumbprint
            }
            foreach ($item in $Certificates) {
                if ($item.keyRemoved -and $item.keyDir) {
                    $keyPath = Join-Path -Path $item.keyDir -ChildPath $item.keyFile
                    Copy-RdpFile -Source (Join-Path -Path $BackupPath -ChildPath $item.keyFile) -Destination $item.keyDir
                    if ($item.keySddl) {
                        Set-RdpPathSddl -Path $keyPath -Sddl $item.keySddl
                        $owner = (ConvertFrom-RdpSddl -Sddl $item.keySddl).owner
                        if ($owner) { $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($keyPath, '/setowner', ('*' + $owner)) }
                    }
                }
                $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('import', (Join-Path -Path $BackupPath -ChildPath $item.reg))
                $result.restored += $item.thumbprint
            }
            if ($Unpinned) {
                $bytes = [byte[]]@(for ($i = 0; $i -lt $Unpinned.Length; $i += 2) { [Convert]::ToByte($Unpinned.Substring($i, 2), 16) })
                Set-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'SSLCertificateSHA1Hash' -Type Binary -Value $bytes
            }
            # Restart-Service -Force stops UmRdpService too and does not start it again.
            $umRdp = @(Get-RdpWinService -Name 'UmRdpService')
            $umWasRunning = ($umRdp.Count -gt 0 -and [string]$umRdp[0].Status -eq 'Running')
            Restart-RdpWinService -Name 'TermService'
            try {
                Wait-RdpWinService -Name 'TermService' -Status 'Running' -TimeoutSeconds $TimeoutSeconds
            } catch {
                $result.problems += ('TermService did not reach Running within {0} s' -f $TimeoutSeconds)
            }
            # -StartUmRdpService: it ran before the change (a run killed mid-restart left it stopped).
            if ($umWasRunning -or $StartUmRdpService) { Start-RdpWinService -Name 'UmRdpService' }
            if (@(Wait-RdpListener -Port $port -TimeoutSeconds $TimeoutSeconds).Count -eq 0) { $result.problems += ('nothing listens on port {0}' -f $port) }
            $result.after = Get-RdpCertificateState
            foreach ($thumbprint in $wanted) {
                if (@(Get-RdpStoreCertificate -Store 'Remote Desktop' -Thumbprint $thumbprint).Count -eq 0) { $result.problems += ('{0} is not back in the store' -f $thumbprint) }
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
