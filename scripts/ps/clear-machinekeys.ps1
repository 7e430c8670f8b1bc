# clear-machinekeys.ps1: On evidence, back up and repair the RDP key container and MachineKeys folder ACLs, and
# regenerate the certificate (restart-termserv's Restart-RdpService) when the key is still unusable; the drastic
# folder rename; and the two undo steps (Restore-RdpMachineKeyAcl, Restore-RdpMachineKeysFolder).
# requires: restart-termserv, handshake, certificate, sessions, facts, sddl, windows, backup, literal, result, record

function Repair-RdpMachineKey {
    # Evidence, backup, narrow repair, verify; regenerate only if the key is still unusable.
    # -Drop: the parts of the result that go first, in order, when it does not fit Run Command's 4 KB.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$AceSets,
        [Parameter(Mandatory = $true)][string]$DefaultFolderSddl,
        [AllowEmptyString()][string]$BackupRoot = '',
        [int]$EventHours = 72,
        [switch]$Regenerate,
        [switch]$Restart,
        [switch]$RenameFolder,
        [switch]$DisconnectSessions,
        [int]$TimeoutSeconds = 60,
        [string[]]$Drop = @(),
        [AllowEmptyString()][string]$RecordTag = ''
    )
    $machineKeys = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft\Crypto\RSA\MachineKeys'
    $result = [ordered]@{
        step = 'clear-machinekeys'; mode = 'repair'; status = 'failed'; error = $null; note = $null
        evidence = @(); before = $null; plan = $null; backup = $null
        changed = [ordered]@{ folder = $null; containers = @() }
        after = $null; keyUsable = $null; restart = $null; regenerate = $null; renamed = $null; removed = @(); problems = @()
        refused = $null; sessions = $null; restore = @(); umRdpService = $null; handshake = $null
    }
    try {
        # A restart with -Force stops UmRdpService; an undo of a run killed mid-restart starts it again only if it ran.
        $umRdp = @(Get-RdpWinService -Name 'UmRdpService')
        if ($umRdp.Count -gt 0) { $result.umRdpService = [string]$umRdp[0].Status }
        $before = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours $EventHours
        $result.before = ConvertTo-RdpKeyStateSummary -State $before
        $result.before.events = $before.events
        $result.evidence = @(Get-RdpEvidenceList -State $before -DefaultFolderSddl $DefaultFolderSddl)
        $unjudged = @($before.containers | Where-Object -FilterScript { -not $_.sddl })
        if ($unjudged.Count -gt 0 -and $before.runAs -ne 'S-1-5-18') {
            throw ('cannot read the ACL of {0} as {1}: from build 17763 Administrators are not in it; run this as SYSTEM (Azure Run Command, or the --emit script in a SYSTEM shell)' -f $unjudged[0].name, $before.runAs)
        }
        if ($result.evidence.Count -eq 0) {
            $result.status = 'ok'
            $result.note = 'no evidence of an unusable RDP key: nothing changed'
            return (Compress-RdpResult -Result $result -Drop $Drop)
        }
        if ($RenameFolder) {
            $result.mode = 'rename'
            # Events stay for -EventHours after a fix: alone, with the key usable and the ACLs as the
            # build wants them, they are history, not a reason to rename the folder again.
            $current = @($result.evidence | Where-Object -FilterScript { $_ -notlike 'event-*' })
            if ($current.Count -eq 0 -and (Test-RdpKeyUsable -State $before)) {
                $result.status = 'ok'
                $result.note = 'only past events name an unusable key; the key is usable now and the folder ACL is the default: nothing renamed'
                return (Compress-RdpResult -Result $result -Drop $Drop)
            }
            $others = @(Get-ChildItem -LiteralPath $machineKeys -Force -File -ErrorAction SilentlyContinue | Where-Object -FilterScript { -not $_.Name.StartsWith('f686aace6942fb7f7ceb231212eef4a4_') }).Count
            $result.plan = [ordered]@{ rename = $true; otherKeys = $others }
            Assert-RdpSessionFree -Result $result -DisconnectSessions:$DisconnectSessions
            if ($PSCmdlet.ShouldProcess($machineKeys, 'Rename to MachineKeys_old_<time>, start a fresh folder, remove the RDP certificate, restart')) {
                $folder = New-RdpTargetRecord -Root $BackupRoot -Step 'clear-machinekeys' -Label 'clear-machinekeys-rename' -Tag $RecordTag -Result $result -Options ([ordered]@{ renameFolder = $true; timeoutSeconds = $TimeoutSeconds })
                $result.backup = $folder
                Backup-RdpMachineKeyAcl -MachineKeys $machineKeys -Folder $folder -FolderSddl ([string]$before.folder.sddl)
                $records = @()
                foreach ($item in @(Get-RdpStoreCertificate -Store 'Remote Desktop')) { $records += Backup-RdpCertificate -Certificate $item -Folder $folder -Key $null }
                $newName = 'MachineKeys_old_{0}' -f (Get-Date).ToString('yyyyMMdd-HHmmss')
                $renamed = [ordered]@{ path = $machineKeys; to = (Join-Path -Path (Split-Path -Path $machineKeys -Parent) -ChildPath $newName) }
                # From here on the undo must put the folder back and every certificate (the undo
                # does only what is still to do).
                Save-RdpTargetRecord -Result $result -Pending @{ renamed = $renamed; removed = $records }
                Rename-Item -LiteralPath $machineKeys -NewName $newName
                $result.renamed = $renamed
                $null = New-Item -ItemType Directory -Path $machineKeys
                Set-RdpFolderAcl -Path $machineKeys -Sddl $DefaultFolderSddl
                foreach ($record in $records) {
                    Save-RdpTargetRecord -Result $result -Pending @{ removed = @($records | Where-Object -FilterScript { @($result.removed) -notcontains $_ }) }
                    Remove-RdpStoreCertificate -Store 'Remote Desktop' -Thumbprint $record.thumbprint
                    $result.removed += $record
                }
                $putBack = @(
                    ('Rename-Item -LiteralPath {0} -NewName {1}' -f (ConvertTo-RdpLiteral -Value $machineKeys), (ConvertTo-RdpLiteral -Value ('MachineKeys_rdpfix_{0}' -f (Get-Date).ToString('yyyyMMdd-HHmmss')))),
                    ('Rename-Item -LiteralPath {0} -NewName {1}' -f (ConvertTo-RdpLiteral -Value $result.renamed.to), (ConvertTo-RdpLiteral -Value (Split-Path -Path $machineKeys -Leaf)))
                )
                $result.restore = $putBack + @(Get-RdpCertRestoreLine -Folder $folder -Record $result.removed)
                $regen = Restart-RdpService -RegenerateCert -TimeoutSeconds $TimeoutSeconds -BackupRoot $BackupRoot -DisconnectSessions:$DisconnectSessions
                $result.regenerate = ConvertTo-RdpRegenSummary -Restart $regen
                if ($null -ne $regen.after) { $result.restore = $putBack + @(Get-RdpCertRestoreLine -Folder $folder -Record $result.removed -NewThumbprint @($regen.after.certificate.thumbprint)) }
                $result.handshake = $regen.handshake
                if ($regen.status -ne 'changed') { $result.problems += ('after the rename: {0}' -f ((@($regen.error) + @($regen.problems) | Where-Object -FilterScript { $_ }) -join '; ')) }
                $after = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours 0
                $result.after = ConvertTo-RdpKeyStateSummary -State $after
                $result.keyUsable = Test-RdpKeyUsable -State $after
                if (-not $result.keyUsable) { $result.problems += 'the new key is not usable by TermService' }
                Set-RdpStepOutcome -Result $result
            } else {
                $result.status = 'would-change'
            }
            return (Compress-RdpResult -Result $result -Drop $Drop)
        }
        $folderFix = ($before.folder.sddl -and -not (Test-RdpSameSecurity -Sddl $before.folder.sddl -Reference $DefaultFolderSddl))
        $fixes = @()
        foreach ($container in $before.containers) {
            $aces = @(Get-RdpAceSet -AceSets $AceSets -Build $before.build -Kind $container.kind)
            if (-not (Test-RdpContainerAcl -Sddl $container.sddl -Expected $aces -OwnerSystem:($container.kind -eq 'listener'))) {
                $fixes += [ordered]@{ container = $container; aces = $aces }
            }
        }
        $result.plan = [ordered]@{ folder = [bool]$folderFix; containers = @($fixes | ForEach-Object -Process { $_.container.name }); regenerate = 'only if the key is still unusable after the ACL repair' }
        if ((($folderFix -or $fixes.Count -gt 0) -and $Restart) -or ($Regenerate -and -not (Test-RdpKeyUsable -State $before))) {
            Assert-RdpSessionFree -Result $result -DisconnectSessions:$DisconnectSessions
        }
        $applied = $false
        if ($folderFix -or $fixes.Count -gt 0) {
            if ($PSCmdlet.ShouldProcess($machineKeys, 'Back up, then repair the MachineKeys folder and RDP key container ACLs')) {
                $folder = New-RdpTargetRecord -Root $BackupRoot -Step 'clear-machinekeys' -Tag $RecordTag -Result $result -Options ([ordered]@{ renameFolder = $false; timeoutSeconds = $TimeoutSeconds })
                $result.backup = $folder
                Backup-RdpMachineKeyAcl -MachineKeys $machineKeys -Folder $folder -FolderSddl ([string]$before.folder.sddl) -Container @($fixes | ForEach-Object -Process { $_.container })
                # Backups are written and checked; only now does anything change.
                # Each descriptor is recorded before it is touched: a step that fails half-way (icacls
                # /remove:d done, /grant:r refused) still journals what its undo must put back.
                if ($folderFix) {
                    $result.changed.folder = [ordered]@{ path = $machineKeys; before = $before.folder.sddl; after = $null }
                    Save-RdpTargetRecord -Result $result
                    Set-RdpFolderAcl -Path $machineKeys -Sddl $DefaultFolderSddl
                    $result.changed.folder.after = Get-RdpPathSddl -Path $machineKeys -Directory
                }
                foreach ($fix in $fixes) {
                    $entry = [ordered]@{ path = $fix.container.path; kind = $fix.container.kind; before = $fix.container.sddl; after = $null }
                    $result.changed.containers += $entry
                    Save-RdpTargetRecord -Result $result
                    Set-RdpContainerAcl -Path $fix.container.path -Aces $fix.aces -OwnerSystem:($fix.container.kind -eq 'listener')
                    $entry.after = Get-RdpPathSddl -Path $fix.container.path
                }
                # icacls /save recorded the folder and its files relative to the parent folder.
                $result.restore = @(('icacls.exe {0} /restore {1} /c' -f (ConvertTo-RdpLiteral -Value (Split-Path -Path $machineKeys -Parent)), (ConvertTo-RdpLiteral -Value (Join-Path -Path $folder -ChildPath 'MachineKeys.acl'))))
                $applied = $true
            } else {
                $result.status = 'would-change'
                return (Compress-RdpResult -Result $result -Drop $Drop)
            }
        }
        $after = $before
        if ($applied) { $after = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours 0 }
        $result.after = ConvertTo-RdpKeyStateSummary -State $after
        $result.keyUsable = Test-RdpKeyUsable -State $after
        if (-not $result.keyUsable -and $Regenerate) {
            if ($after.certificate.source -eq 'pinned') {
                $result.problems += 'the key of the pinned certificate is still unusable; rdpfix does not remove a CA-issued certificate: re-import it with its private key'
            } else {
                $regen = Restart-RdpService -RegenerateCert -RemoveKey -OnlyThumbprint ([string]$after.certificate.thumbprint) -BackupRoot $BackupRoot -TimeoutSeconds $TimeoutSeconds -DisconnectSessions:$DisconnectSessions
                $result.regenerate = ConvertTo-RdpRegenSummary -Restart $regen
                # The regeneration is undone first, then the ACLs.
                $result.restore = @($regen.restore) + @($result.restore)
                $result.handshake = $regen.handshake
                if ($regen.status -eq 'failed') { $result.problems += ('regeneration failed: {0}' -f ((@($regen.error) + @($regen.problems) | Where-Object -FilterScript { $_ }) -join '; ')) }
                if ($regen.status -eq 'changed') {
                    $final = Get-RdpKeyEvidence -MachineKeys $machineKeys -EventHours 0
                    $result.after = ConvertTo-RdpKeyStateSummary -State $final
                    $result.keyUsable = Test-RdpKeyUsable -State $final
                    if (-not $result.keyUsable) { $result.problems += 'the regenerated key is not usable by TermService' }
                }
            }
        } elseif (-not $result.keyUsable) {
            $result.problems += 'the key is still unusable (regeneration not allowed)'
        } elseif ($applied -and $Restart) {
            $restarted = Restart-RdpService -TimeoutSeconds $TimeoutSeconds -DisconnectSessions:$DisconnectSessions
            $result.restart = ConvertTo-RdpRegenSummary -Restart $restarted
            $result.handshake = $restarted.handshake
            if ($restarted.status -eq 'failed') { $result.problems += ('restart failed: {0}' -f ((@($restarted.error) + @($restarted.problems) | Where-Object -FilterScript { $_ }) -join '; ')) }
        }
        # A repair without a restart is verified as a restart is: a client's handshake must complete
        # (checked from the server itself).
        if ($applied -and $result.problems.Count -eq 0 -and $null -eq $result.handshake) { Test-RdpStepHandshake -Result $result }
        if ($result.problems.Count -gt 0) { $result.status = 'failed' }
        elseif ($null -ne $result.regenerate -and $result.regenerate.status -eq 'would-change') { $result.status = 'would-change' }
        elseif ($applied -or ($null -ne $result.regenerate -and $result.regenerate.status -eq 'changed')) { $result.status = 'changed' }
        else {
            $result.status = 'ok'
            $result.note = 'evidence was found, but the ACLs already match the build and the key is usable: nothing to change'
        }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    return (Compress-RdpResult -Result $result -Drop $Drop)
}

function Get-RdpKeyEvidence {
    # The RDP key containers (the listener's own, plus the key of a pinned certificate), their ACLs,
    # the MachineKeys folder ACL and the events that name an unusable key.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$MachineKeys, [int]$EventHours = 72)
    $certificate = Get-RdpCertificateState -WithKey
    $state = [ordered]@{
        runAs = Get-RdpRunAs
        build = [int](Get-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' -Name @('CurrentBuild'))['CurrentBuild']
        folder = [ordered]@{ path = $MachineKeys; sddl = Get-RdpPathSddl -Path $MachineKeys -Directory }
        containers = @()
        certificate = [ordered]@{ thumbprint = $certificate.thumbprint; source = $certificate.source; selfSigned = $certificate.selfSigned; hasPrivateKey = $null; keyFile = $null; opened = $null; error = $null }
        events = [ordered]@{}
        listError = $null
    }
    if ($EventHours -gt 0) { $state.events = (Get-RdpEventSummary -Since (Get-Date).AddHours(-$EventHours) -Max 0).counts }
    if ($null -ne $certificate.inUse) { $state.certificate.hasPrivateKey = $certificate.inUse.HasPrivateKey }
    if ($null -ne $certificate.key) {
        $state.certificate.keyFile = $certificate.key.file
        $state.certificate.opened = $certificate.key.opened
        $state.certificate.error = $certificate.key.error
    }
    try {
        foreach ($file in @(Get-ChildItem -LiteralPath $MachineKeys -Filter ('f686aace6942fb7f7ceb231212eef4a4_' + '*') -Force -File -ErrorAction Stop | Select-Object -First 4)) {
            # The path in the form the caller gave the folder (FullName can differ from the key file
            # the certificate names: another spelling of the same file would be listed twice).
            $path = Join-Path -Path $MachineKeys -ChildPath $file.Name
            $state.containers += [ordered]@{ name = $file.Name; path = $path; kind = 'listener'; sddl = Get-RdpPathSddl -Path $path }
        }
    } catch {
        $state.listError = $_.Exception.Message
    }
    $keyFile = $state.certificate.keyFile
    # One container per file: the certificate's key file is usually one of the files listed above.
    $listed = $keyFile -and ((Split-Path -Path (Split-Path -Path $keyFile -Parent) -Leaf) -eq (Split-Path -Path $MachineKeys -Leaf)) -and (@($state.containers | ForEach-Object -Process { $_.name }) -contains (Split-Path -Path $keyFile -Leaf))
    if ($keyFile -and -not $listed) {
        $kind = 'other'
        if ((Split-Path -Path $keyFile -Leaf).StartsWith('f686aace6942fb7f7ceb231212eef4a4_')) { $kind = 'listener' }
        $state.containers += [ordered]@{ name = (Split-Path -Path $keyFile -Leaf); path = $keyFile; kind = $kind; sddl = $certificate.key.sddl }
    }
    return $state
}

function Get-RdpAceSet {
    # The entries a container must carry: by build for the listener's own key, NETWORK SERVICE's
    # read only for the key of a pinned certificate.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$AceSets, [int]$Build, [string]$Kind)
    if ($Kind -ne 'listener') { return $AceSets.other }
    if ($Build -le $AceSets.legacyMaxBuild) { return $AceSets.legacy }
    if ($Build -ge $AceSets.modernMinBuild) { return $AceSets.modern }
    return $AceSets.between
}

function Test-RdpContainerAcl {
    [CmdletBinding()]
    param([AllowEmptyString()][string]$Sddl, [Parameter(Mandatory = $true)][object[]]$Expected, [switch]$OwnerSystem)
    if (-not $Sddl) { return $false }
    foreach ($entry in $Expected) {
        if (-not (Test-RdpSddlAccess -Sddl $Sddl -Sid @($entry.sid) -Mask $entry.mask)) { return $false }
    }
    if ($OwnerSystem) {
        if ((ConvertFrom-RdpSddl -Sddl $Sddl).owner -ne 'S-1-5-18') { return $false }
    }
    return $true
}

function Get-RdpEvidenceList {
    # The evidence clear-machinekeys acts on; none means it changes nothing.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State, [Parameter(Mandatory = $true)][string]$DefaultFolderSddl)
    $networkService = @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-6', 'S-1-5-32-545')
    $evidence = @()
    foreach ($container in $State.containers) {
        if (-not $container.sddl) {
            if ($State.runAs -eq 'S-1-5-18') { $evidence += ('key-acl-unreadable:{0}' -f $container.name) }
        } elseif (-not (Test-RdpSddlAccess -Sddl $container.sddl -Sid $networkService -Mask 0x120089)) {
            $evidence += ('key-unreadable:{0}' -f $container.name)
        }
    }
    if ($State.certificate.opened -eq $false -and $State.certificate.error -and $State.runAs -eq 'S-1-5-18') { $evidence += 'key-open-failed' }
    foreach ($id in @('36870', '36871', '1055', '1057', '1058')) {
        if ($State.events.Contains($id)) { $evidence += ('event-{0}' -f $id) }
    }
    if ($State.folder.sddl -and -not (Test-RdpSameSecurity -Sddl $State.folder.sddl -Reference $DefaultFolderSddl)) { $evidence += 'folder-acl' }
    return $evidence
}

function Test-RdpKeyUsable {
    # The certificate in use exists, has its key file, NETWORK SERVICE can read it, and (as SYSTEM)
    # the key opens.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State)
    $certificate = $State.certificate
    if (-not $certificate.thumbprint -or $certificate.hasPrivateKey -eq $false -or -not $certificate.keyFile) { return $false }
    $keyName = Split-Path -Path $certificate.keyFile -Leaf
    $key = @($State.containers | Where-Object -FilterScript { $_.name -eq $keyName })
    if ($key.Count -eq 0 -or -not $key[0].sddl) { return $false }
    if (-not (Test-RdpSddlAccess -Sddl $key[0].sddl -Sid @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-6', 'S-1-5-32-545') -Mask 0x120089)) { return $false }
    if ($State.runAs -eq 'S-1-5-18' -and $certificate.opened -eq $false) { return $false }
    return $true
}

function Backup-RdpMachineKeyAcl {
    # icacls /save of the whole folder (restorable with icacls /restore on its parent), the folder's
    # SDDL, and a copy plus the SDDL of each container about to change; all checked.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$MachineKeys,
        [Parameter(Mandatory = $true)][string]$Folder,
        [AllowEmptyString()][string]$FolderSddl = '',
        [object[]]$Container = @()
    )
    if ($PSCmdlet.ShouldProcess($Folder, 'Back up the MachineKeys ACLs and the RDP key containers')) {
        $aclFile = Join-Path -Path $Folder -ChildPath 'MachineKeys.acl'
        # /c continues past files this account may not read; what matters is checked below.
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($MachineKeys, '/save', $aclFile, '/t', '/c', '/q') -MaxExitCode ([int]::MaxValue)
        $files = @($aclFile)
        $saved = ''
        if (Test-Path -LiteralPath $aclFile) { $saved = [string](Get-Content -LiteralPath $aclFile -Encoding Unicode -Raw) }
        foreach ($item in $Container) {
            if ($item.kind -eq 'listener' -and $saved.IndexOf($item.name, [System.StringComparison]::OrdinalIgnoreCase) -lt 0) {
                throw ('backup failed: icacls /save did not record {0}; nothing was changed' -f $item.name)
            }
            Copy-RdpBackupFile -Source $item.path -Folder $Folder
            $sddlFile = Join-Path -Path $Folder -ChildPath ($item.name + '.sddl.txt')
            Set-Content -LiteralPath $sddlFile -Value ([string]$item.sddl) -Encoding ASCII
            $files += @((Join-Path -Path $Folder -ChildPath $item.name), $sddlFile)
        }
        if ($FolderSddl) {
            $folderFile = Join-Path -Path $Folder -ChildPath 'MachineKeys.sddl.txt'
            Set-Content -LiteralPath $folderFile -Value $FolderSddl -Encoding ASCII
            $files += $folderFile
        }
        Assert-RdpBackupFile -Path $files
    }
}

function Set-RdpContainerAcl {
    # Only this file: remove denies for the SIDs being granted, grant the build's set by SID
    # (replacing those SIDs' explicit grants), owner SYSTEM. Other entries are kept.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][object[]]$Aces, [switch]$OwnerSystem)
    if ($PSCmdlet.ShouldProcess($Path, 'Set the RDP key container ACL to the build default')) {
        $sids = @($Aces | ForEach-Object -Process { '*' + $_.sid })
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList (@($Path, '/remove:d') + $sids)
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList (@($Path, '/grant:r') + @($Aces | ForEach-Object -Process { $_.grant }))
        if ($OwnerSystem) { $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($Path, '/setowner', '*S-1-5-18') }
    }
}

function Set-RdpFolderAcl {
    # The MachineKeys folder back to its default descriptor (DACL, then owner SYSTEM). Not recursive.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)][string]$Sddl)
    if ($PSCmdlet.ShouldProcess($Path, 'Restore the default MachineKeys folder ACL (this folder only)')) {
        Set-RdpPathSddl -Path $Path -Sddl $Sddl -Directory
        $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($Path, '/setowner', '*S-1-5-18')
    }
}

function ConvertTo-RdpRegenSummary {
    # The parts of a restart-termserv result the journal needs, compactly.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Restart)
    $before = $null
    $after = $null
    if ($null -ne $Restart.before) { $before = $Restart.before.certificate.thumbprint }
    if ($null -ne $Restart.after) { $after = $Restart.after.certificate.thumbprint }
    # The check's cause and attempts only: its detail is in the step's own handshake and problems.
    $handshake = $null
    if ($null -ne $Restart.handshake) { $handshake = [ordered]@{ cause = $Restart.handshake.cause; attempts = $Restart.handshake.attempts } }
    return [ordered]@{
        status = $Restart.status; error = $Restart.error; problems = $Restart.problems; backup = $Restart.backup
        removed = $Restart.removed; unpinned = $Restart.unpinned; restarted = $Restart.restarted
        thumbprintBefore = $before; thumbprintAfter = $after; plan = $Restart.plan; warnings = @($Restart.warnings)
        handshake = $handshake
    }
}

function ConvertTo-RdpKeyStateSummary {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State)
    return [ordered]@{
        runAs = $State.runAs
        build = $State.build
        certificate = $State.certificate
        folder = $State.folder
        containers = @($State.containers | ForEach-Object -Process { [ordered]@{ name = $_.name; kind = $_.kind; sddl = $_.sddl } })
    }
}

function Assert-RdpSessionFree {
    # Before a change that ends in a TermService restart: refuse (nothing changed yet) when other
    # signed-in sessions would be disconnected, unless -DisconnectSessions. A dry run only reports.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Result, [switch]$DisconnectSessions)
    $termService = @(Get-RdpWinService -Name 'TermService')
    $running = ($termService.Count -gt 0 -and [string]$termService[0].Status -eq 'Running')
    $Result.sessions = Get-RdpSession
    $block = Test-RdpSessionBlock -Sessions $Result.sessions -Running $running
    if ($block -and -not $DisconnectSessions -and -not $WhatIfPreference) {
        $Result.refused = 'sessions'
        throw $block
    }
}

function Restore-RdpMachineKeyAcl {
    # Undo of an ACL repair: each descriptor back to what it was (DACL, then owner), read back.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([object[]]$Items = @())
    $result = [ordered]@{ step = 'clear-machinekeys-undo'; status = 'failed'; error = $null; restored = @(); problems = @() }
    try {
        $pending = @()
        foreach ($entry in $Items) {
            if (-not (Test-Path -LiteralPath $entry.path)) { $result.problems += ('{0} no longer exists' -f $entry.path); continue }
            $current = Get-RdpPathSddl -Path $entry.path -Directory:([bool]$entry.directory)
            if (-not $current -or -not (Test-RdpSameSecurity -Sddl $current -Reference $entry.sddl)) { $pending += $entry }
        }
        if ($pending.Count -eq 0 -and $result.problems.Count -eq 0) {
            $result.status = 'ok'
            return $result
        }
        if ($PSCmdlet.ShouldProcess(('{0} item(s)' -f $pending.Count), 'Restore the recorded access control lists')) {
            foreach ($entry in $pending) {
                Set-RdpPathSddl -Path $entry.path -Sddl $entry.sddl -Directory:([bool]$entry.directory)
                $owner = (ConvertFrom-RdpSddl -Sddl $entry.sddl).owner
                if ($owner) { $null = Invoke-RdpNative -FilePath 'icacls.exe' -ArgumentList @($entry.path, '/setowner', ('*' + $owner)) }
                $now = Get-RdpPathSddl -Path $entry.path -Directory:([bool]$entry.directory)
                if ($now -and (Test-RdpSameSecurity -Sddl $now -Reference $entry.sddl)) { $result.restored += $entry.path }
                else { $result.problems += ('{0} did not read back as recorded' -f $entry.path) }
            }
            Set-RdpStepOutcome -Result $result
        } else {
            $result.status = 'would-change'
        }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    return $result
}

function Restore-RdpMachineKeysFolder {
    # Undo of --rename-folder: the fresh folder is moved aside (kept), the renamed one put back, and
    # the old certificate(s) restored through Restore-RdpCertificate (which restarts and verifies).
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$RenamedTo,
        [Parameter(Mandatory = $true)][string]$BackupPath,
        [object[]]$Certificates = @(),
        [int]$TimeoutSeconds = 60,
        [switch]$StartUmRdpService
    )
    $result = [ordered]@{ step = 'clear-machinekeys-undo'; status = 'failed'; error = $null; note = $null; movedAside = $null; certificates = $null }
    try {
        if (-not (Test-Path -LiteralPath $RenamedTo)) {
            if (-not (Test-Path -LiteralPath $Path)) {
                $result.error = ('neither {0} nor {1} exists' -f $RenamedTo, $Path)
                return $result
            }
            # The folder is where it belongs (never renamed: the run stopped before it, or put back
            # already): only the certificates may still be missing; Restore-RdpCertificate says 'ok'
            # when they are all there.
            $restored = Restore-RdpCertificate -BackupPath $BackupPath -Certificates $Certificates -TimeoutSeconds $TimeoutSeconds -StartUmRdpService:$StartUmRdpService
            $result.certificates = [ordered]@{ status = $restored.status; error = $restored.error; problems = $restored.problems }
            $result.status = $restored.status
            if ($restored.status -eq 'ok') { $result.note = ('{0} does not exist and {1} is in place: nothing to put back' -f $RenamedTo, $Path) }
            return $result
        }
        if ($PSCmdlet.ShouldProcess($Path, ('Move the fresh folder aside and rename {0} back' -f $RenamedTo))) {
            if (Test-Path -LiteralPath $Path) {
                # The fresh folder (the keys made since the rename) is kept, never deleted: into the
                # run's protected backup folder, or beside MachineKeys when that is another volume
                # (a folder moves only within one volume; the move fails before it moves anything).
                $stamp = (Get-Date).ToString('yyyyMMdd-HHmmss')
                $inBackup = Join-Path -Path $BackupPath -ChildPath ('{0}.after-undo-{1}' -f (Split-Path -Path $Path -Leaf), $stamp)
                try {
                    Move-Item -LiteralPath $Path -Destination $inBackup -ErrorAction Stop
                    $result.movedAside = $inBackup
                } catch {
                    $aside = '{0}_rdpfix_{1}' -f (Split-Path -Path $Path -Leaf), $stamp
                    Rename-Item -LiteralPath $Path -NewName $aside -ErrorAction Stop
                    $result.movedAside = Join-Path -Path (Split-Path -Path $Path -Parent) -ChildPath $aside
                }
            }
            Rename-Item -LiteralPath $RenamedTo -NewName (Split-Path -Path $Path -Leaf)
            $restored = Restore-RdpCertificate -BackupPath $BackupPath -Certificates $Certificates -TimeoutSeconds $TimeoutSeconds -StartUmRdpService:$StartUmRdpService
            $result.certificates = [ordered]@{ status = $restored.status; error = $restored.error; problems = $restored.problems }
            if ((Test-Path -LiteralPath $Path) -and $restored.status -ne 'failed') { $result.status = 'changed' } else { $result.status = 'failed' }
        } else {
            $result.status = 'would-change'
        }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    return $result
}
