# restart-termserv.ps1: Restart TermService, wait for Running and the listener, and (-RegenerateCert) replace the
# Remote Desktop certificate after backing it up. Restart-RdpService is also clear-machinekeys' step 4.
# requires: certificate, sessions, facts, sddl, backup, windows, result, record, handshake

function Get-RdpServiceState {
    # Services, listener and certificate in use, for before/after.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][int]$Port)
    return [ordered]@{
        services = @(Get-RdpServiceSnapshot -Name @('TermService', 'UmRdpService'))
        listening = (@(Get-RdpListener -Port $Port).Count -gt 0)
        port = $Port
        certificate = Get-RdpCertificateState -WithKey
    }
}

function Restart-RdpService {
    # Restart TermService (-Force also stops UmRdpService, which is started again), wait for Running
    # and the listener. -RegenerateCert: back up, then remove the Remote Desktop store certificate(s)
    # (and an orphaned pin) first, and verify that a new certificate appeared. -Drop: the parts of the
    # result that go first, in order, when it does not fit Run Command's 4 KB (the step passes them;
    # clear-machinekeys, which reads the whole result, does not).
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [int]$TimeoutSeconds = 60,
        [switch]$RegenerateCert,
        [AllowEmptyString()][string]$OnlyThumbprint = '',
        [switch]$RemoveKey,
        [switch]$ReplacePinned,
        [switch]$DisconnectSessions,
        [AllowEmptyString()][string]$BackupRoot = '',
        [int]$Port = 0,
        [string[]]$Drop = @(),
        [AllowEmptyString()][string]$RecordTag = ''
    )
    $started = Get-Date
    if ($Port -le 0) { $Port = Get-RdpPort }
    $result = [ordered]@{
        step = 'restart-termserv'; status = 'failed'; error = $null; note = $null; restarted = $false
        before = Get-RdpServiceState -Port $Port; after = $null; backup = $null; removed = @(); unpinned = $null
        plan = [ordered]@{ remove = @(); unpin = $false; restart = $true }; problems = @(); warnings = @(); events = $null
        refused = $null; sessions = $null; restore = @(); handshake = $null
    }
    try {
        $certificate = $result.before.certificate
        $toRemove = @()
        if ($RegenerateCert) {
            $inStore = $false
            if ($OnlyThumbprint) { $inStore = (@(Get-RdpStoreCertificate -Store 'Remote Desktop' -Thumbprint $OnlyThumbprint).Count -gt 0) }
            if ($OnlyThumbprint -and -not $inStore -and $certificate.thumbprint -ne $OnlyThumbprint -and $certificate.pinned -ne $OnlyThumbprint) {
                $result.status = 'ok'
                $result.note = ('the certificate {0} is no longer in use nor in the Remote Desktop store: nothing to regenerate' -f $OnlyThumbprint)
                $result.plan.restart = $false
                $result.after = $result.before
                return (Compress-RdpResult -Result $result -Drop $Drop)
            }
            if ($certificate.source -eq 'pinned') {
                $expired = ($null -ne $certificate.inUse -and $certificate.inUse.NotAfter -lt (Get-Date))
                if (-not $expired -and -not $ReplacePinned) {
                    $result.refused = 'pinned'
                    throw ('the listener uses the pinned certificate {0} (SSLCertificateSHA1Hash), which Windows does not regenerate; renew it with its CA, or pass --replace-pinned to remove the pin and fall back to a self-signed certificate' -f $certificate.pinned)
                }
                $result.plan.unpin = $true
            } elseif ($certificate.source -eq 'pinned-missing') {
                $result.plan.unpin = $true
            }
            $toRemove = @(Get-RdpStoreCertificate -Store 'Remote Desktop' | Where-Object -FilterScript { -not $OnlyThumbprint -or $_.Thumbprint -eq $OnlyThumbprint -or $certificate.pinned -eq $OnlyThumbprint })
            $result.plan.remove = @($toRemove | ForEach-Object -Process { $_.Thumbprint })
        }
        # Who a restart disconnects, decided before anything changes (a dry run reports it too).
        $termService = @($result.before.services | Where-Object -FilterScript { $_.Name -eq 'TermService' })
        $running = ($termService.Count -gt 0 -and [string]$termService[0].Status -eq 'Running')
        $result.sessions = Get-RdpSession
        $block = Test-RdpSessionBlock -Sessions $result.sessions -Running $running
        if ($block -and -not $DisconnectSessions -and -not $WhatIfPreference) {
            $result.refused = 'sessions'
            throw $block
        }
        $pinFile = ''
        if ($toRemove.Count -gt 0 -or $result.plan.unpin) {
            if ($PSCmdlet.ShouldProcess('Cert:\LocalMachine\Remote Desktop', 'Back up, then remove the certificate(s) so TermService creates a new one')) {
                $folder = New-RdpTargetRecord -Root $BackupRoot -Step 'restart-termserv' -Tag $RecordTag -Result $result -Options ([ordered]@{ timeoutSeconds = $TimeoutSeconds; regenerateCert = [bool]$RegenerateCert; removeKey = [bool]$RemoveKey; replacePinned = [bool]$ReplacePinned })
                $result.backup = $folder
                $records = @()
                foreach ($item in $toRemove) { $records += Backup-RdpCertificate -Certificate $item -Folder $folder -Key (Get-RdpKeyFile -Certificate $item) }
                if ($result.plan.unpin) {
                    $pinFile = Join-Path -Path $folder -ChildPath 'rdp-tcp.reg'
                    $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp', $pinFile, '/y')
                    Assert-RdpBackupFile -Path @($pinFile)
                }
                # Every backup is written and checked; only now does anything change. The record
                # names each removal before it happens (with the key, when it goes too).
                foreach ($record in $records) {
                    if ($RemoveKey -and $record.keyFile) { $record.keyRemoved = $true }
                    Save-RdpTargetRecord -Result $result -Pending @{ removed = $record }
                    Remove-RdpStoreCertificate -Store 'Remote Desktop' -Thumbprint $record.thumbprint
                    if ($RemoveKey -and $record.keyFile) {
                        Remove-Item -LiteralPath (Join-Path -Path $record.keyDir -ChildPath $record.keyFile) -Force -Confirm:$false
                    }
                    $result.removed += $record
                }
                if ($result.plan.unpin) {
                    Save-RdpTargetRecord -Result $result -Pending @{ unpinned = $certificate.pinned }
                    Remove-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name 'SSLCertificateSHA1Hash'
                    $result.unpinned = $certificate.pinned
                }
                $result.restore = @(Get-RdpCertRestoreLine -Folder $folder -Record $result.removed -PinFile $pinFile)
            }
        }
        if ($PSCmdlet.ShouldProcess('TermService', 'Restart (with -Force: UmRdpService is stopped and started again)')) {
            Save-RdpTargetRecord -Result $result
            $umRdp = @(Get-RdpWinService -Name 'UmRdpService')
            $umWasRunning = ($umRdp.Count -gt 0 -and [string]$umRdp[0].Status -eq 'Running')
            Restart-RdpWinService -Name 'TermService'
            $result.restarted = $true
            try {
                Wait-RdpWinService -Name 'TermService' -Status 'Running' -TimeoutSeconds $TimeoutSeconds
            } catch {
                $result.problems += ('TermService did not reach Running within {0} s' -f $TimeoutSeconds)
            }
            if ($umWasRunning) { Start-RdpWinService -Name 'UmRdpService' }
            $null = Wait-RdpListener -Port $Port -TimeoutSeconds $TimeoutSeconds
            $removedThumbprints = @($result.removed | ForEach-Object -Process { $_.thumbprint })
            $after = Get-RdpServiceState -Port $Port
            if ($RegenerateCert) {
                $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
                while ((-not $after.certificate.thumbprint -or $removedThumbprints -contains $after.certificate.thumbprint) -and (Get-Date) -lt $deadline) {
                    Start-Sleep -Seconds 2
                    $after = Get-RdpServiceState -Port $Port
                }
            }
            $result.after = $after
            if ($result.restore.Count -gt 0) { $result.restore = @(Get-RdpCertRestoreLine -Folder $result.backup -Record $result.removed -PinFile $pinFile -NewThumbprint @($after.certificate.thumbprint)) }
            $termService = @($after.services | Where-Object -FilterScript { $_.Name -eq 'TermService' })
            if ($termService.Count -eq 0 -or [string]$termService[0].Status -ne 'Running') { $result.problems += 'TermService is not running' }
            if (-not $after.listening) { $result.problems += ('nothing listens on port {0}' -f $Port) }
            if ($RegenerateCert) {
                if (-not $after.certificate.thumbprint -or $removedThumbprints -contains $after.certificate.thumbprint) {
                    $result.problems += 'Windows did not create a new certificate'
                } elseif ($null -ne $after.certificate.key -and $after.certificate.key.sddl) {
                    if (-not (Test-RdpSddlAccess -Sddl $after.certificate.key.sddl -Sid @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-6', 'S-1-5-32-545') -Mask 0x120089)) {
                        $result.problems += 'NETWORK SERVICE cannot read the new certificate''s key'
                    }
                } else {
                    $result.warnings += 'the new key''s ACL could not be read by this account'
                }
            }
            # The restart is 'changed' only when a client's handshake now completes: checked from
            # the server itself (a listener that is up but still refuses TLS is a failed restart).
            if ($result.problems.Count -eq 0) { Test-RdpStepHandshake -Result $result -Port $Port }
            Set-RdpStepOutcome -Result $result
        } else {
            $result.status = 'would-change'
        }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    if ($result.status -eq 'failed') {
        $result.events = Get-RdpEventSummary -Since $started.AddMinutes(-10) -Max 4 -MessageLength 100 -Provider @('Service Control Manager', 'Microsoft-Windows-TerminalServices-RemoteConnectionManager', 'Schannel')
    }
    return (Compress-RdpResult -Result $result -Drop $Drop)
}
