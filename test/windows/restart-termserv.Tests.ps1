# restart-termserv (and its certificate undo), run for real against the Windows twin: the scripts are
# the real generated text (test/windows/emit.ts), the undo is the one the journal would record from
# the real raw result (regenChange, scripts/lib/certificate.ts).
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $script:RdpTcp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
    $script:OldThumb = '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41'
    # A CA-issued certificate in My, pinned by SSLCertificateSHA1Hash (built in the tests that need it).
    $script:CaThumb = 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678'
    $t = 2
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t }, $true) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t }, $false) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t; disconnectSessions = $true }, $false) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t; regenerateCert = $true; onlyThumbprint = $OldThumb }, $true) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t; regenerateCert = $true; onlyThumbprint = $OldThumb }, $false) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t; regenerateCert = $true }, $false) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t; regenerateCert = $true; replacePinned = $true }, $false) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = $t; regenerateCert = $true; removeKey = $true }, $false) }
    ))
    $script:Scripts = @{ plainDry = $s[0].script; plain = $s[1].script; plainForce = $s[2].script; regenDry = $s[3].script; regenOnly = $s[4].script; regen = $s[5].script; regenReplacePinned = $s[6].script; regenRemoveKey = $s[7].script }

    # The twin's files live under TestDrive (a POSIX path); regenChange embeds only absolute Windows
    # paths in an undo (validateWindowsPath), as a real target reports them. So the raw result goes
    # to the journal with the TestDrive prefix written as 'C:\<rest>' (forward slashes are allowed in
    # a Windows path), and the journaled script gets the POSIX prefix back, only in its quoted literals.
    function Get-Undo {
        param([Parameter(Mandatory = $true)]$Run, [int]$TimeoutSeconds = 2)
        $posix = (Resolve-Path -LiteralPath $TestDrive).ProviderPath.TrimEnd('/')
        $win = 'C:\' + $posix.TrimStart('/')
        $raw = $Run.json.Replace(('"' + $posix), ('"' + $win.Replace('\', '\\'))) | ConvertFrom-Json
        $a = @(Invoke-RdpfixEmit -Request @(@{ undo = 'restart-termserv'; raw = $raw; options = @{ timeoutSeconds = $TimeoutSeconds } }))
        $changes = @($a[0].changes)
        if ($changes.Count -ne 1) { throw ('expected one journal change, got {0}' -f $changes.Count) }
        if ($changes[0].undo.kind -ne 'powershell') { throw ('the journal recorded no script: {0}' -f ($changes[0].undo | ConvertTo-Json -Compress)) }
        $script = [string]$changes[0].undo.script
        if (-not $script.Contains("'" + $win)) { throw 'the journaled undo does not name the backup folder' }
        return $script.Replace(("'" + $win), ("'" + $posix))
    }
    function Get-Part { param([string[]]$Name) $st = Get-TwinState; return (($Name | ForEach-Object -Process { $st[$_] }) | ConvertTo-Json -Depth 8 -Compress) }
    function Set-PinnedCaCertificate {
        Add-TwinCertificate -Store 'My' -Thumbprint $CaThumb -Subject 'CN=web-01.example.com' -Issuer 'CN=Example Issuing CA' -NotAfter (Get-Date).AddDays(300) -KeyName 'ca-key'
        $bytes = @(for ($i = 0; $i -lt $CaThumb.Length; $i += 2) { [Convert]::ToByte($CaThumb.Substring($i, 2), 16) })
        Set-TwinRegistryKey -Path $RdpTcp -Values @{ SSLCertificateSHA1Hash = $bytes }
    }
    function New-Session { param([int]$Id, [string]$User) [pscustomobject]@{ Id = $Id; User = $User; State = 'Active'; Client = 'LAPTOP-7'; Station = ('RDP-Tcp#{0}' -f $Id) } }
}

Describe 'restart-termserv on the twin' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
    }

    It 'plain restart: dry run would change, nothing touched; apply restarts TermService, starts UmRdpService again, writes no backup' {
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.plainDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change' -Because $dry.json
        $dry.result.restarted | Should -BeFalse
        Get-TwinStateJson | Should -Be $before
        Get-TwinCalls | Should -Not -Contain 'Restart-RdpWinService TermService'

        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.restarted | Should -BeTrue
        $run.result.after.listening | Should -BeTrue
        $run.result.backup | Should -BeNullOrEmpty
        @($run.result.removed).Count | Should -Be 0
        $calls = @(Get-TwinCalls)
        $calls | Should -Contain 'Restart-RdpWinService TermService'
        # Restart-Service -Force stopped UmRdpService (the twin does what Windows does); the step starts it again.
        $calls | Should -Contain 'Start-RdpWinService UmRdpService'
        (Get-TwinService -Name 'UmRdpService').Status | Should -Be 'Running'
        (Get-TwinService -Name 'TermService').Status | Should -Be 'Running'
        # Same certificate before and after: a plain restart regenerates nothing.
        $run.result.after.certificate.thumbprint | Should -Be $OldThumb
        Get-TwinStateJson | Should -Be $before
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix/backup') | Should -BeFalse
        # There is no "ok" for a restart: a second run restarts again and leaves the same state.
        $again = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $again.result.status | Should -Be 'changed'
        Get-TwinStateJson | Should -Be $before
        # Nothing to undo: the journal records no change for a plain restart.
        @((Invoke-RdpfixEmit -Request @(@{ undo = 'restart-termserv'; raw = $run.result; options = @{} }))[0].changes).Count | Should -Be 0
    }

    It 'plain restart with UmRdpService stopped leaves it stopped' {
        Set-TwinValue -Name 'services' -Value ([ordered]@{ TermService = [ordered]@{ Status = 'Running'; StartType = 'Manual' }; UmRdpService = [ordered]@{ Status = 'Stopped'; StartType = 'Manual' }; SessionEnv = [ordered]@{ Status = 'Running'; StartType = 'Manual' } })
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        Get-TwinCalls | Should -Not -Contain 'Start-RdpWinService UmRdpService'
        (Get-TwinService -Name 'UmRdpService').Status | Should -Be 'Stopped'
    }

    It 'a stopped TermService is started by the restart and something listens again' {
        $services = [ordered]@{ TermService = [ordered]@{ Status = 'Stopped'; StartType = 'Manual' }; UmRdpService = [ordered]@{ Status = 'Stopped'; StartType = 'Manual' }; SessionEnv = [ordered]@{ Status = 'Running'; StartType = 'Manual' } }
        Set-TwinValue -Name 'services' -Value $services
        # Signed-in sessions do not block: a stopped TermService has no connection to drop.
        Set-TwinValue -Name 'sessions' -Value @(New-Session -Id 2 -User 'WEB-01\alice')
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.before.listening | Should -BeFalse
        $run.result.after.listening | Should -BeTrue
        (Get-TwinService -Name 'TermService').Status | Should -Be 'Running'
    }

    It '-RegenerateCert: dry run plans the removal and touches nothing; apply backs up, removes, and a new certificate is in use; again is ok' {
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.regenDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change' -Because $dry.json
        @($dry.result.plan.remove) | Should -Be @($OldThumb)
        Get-TwinStateJson | Should -Be $before
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix') | Should -BeFalse

        $run = Invoke-RdpfixScript -Script $Scripts.regenOnly -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $new = @(Get-TwinCertificates -Store 'Remote Desktop')
        $new.Count | Should -Be 1
        $new[0].Thumbprint | Should -Not -Be $OldThumb
        $run.result.after.certificate.thumbprint | Should -Be $new[0].Thumbprint
        $run.result.before.certificate.thumbprint | Should -Be $OldThumb
        Get-TwinCalls | Should -Contain ('TermService created certificate {0}' -f $new[0].Thumbprint)
        # The backup: public cert, store entry and key container copy, each named in the record.
        $rec = @($run.result.removed)
        $rec.Count | Should -Be 1
        $rec[0].thumbprint | Should -Be $OldThumb
        $rec[0].keyRemoved | Should -BeFalse
        foreach ($f in @($rec[0].cer, $rec[0].reg, $rec[0].keyFile)) { Test-Path -LiteralPath (Join-Path $run.result.backup $f) -PathType Leaf | Should -BeTrue -Because $f }
        $run.lines | Should -Contain ('rdpfix: backup on this server: {0}' -f $run.result.backup)
        # The paste-able restore names the new certificate to remove and the store entry to import.
        @($run.result.restore) | Should -Contain ('Remove-Item -LiteralPath ''Cert:\LocalMachine\Remote Desktop\{0}''' -f $new[0].Thumbprint)
        (@($run.result.restore) -join "`n") | Should -Match ([regex]::Escape($rec[0].reg))
        # NETWORK SERVICE can read the new key (the key container kept its name; Windows reset its ACL).
        @($run.result.problems).Count | Should -Be 0

        $afterApply = Get-TwinStateJson
        $again = Invoke-RdpfixScript -Script $Scripts.regenOnly -Folder $TestDrive
        $again.result.status | Should -Be 'ok' -Because $again.json
        $again.result.note | Should -Match 'no longer in use'
        Get-TwinStateJson | Should -Be $afterApply
    }

    It '-RegenerateCert, then the journaled undo: the old certificate is back, the Windows-created one removed and backed up; twice is ok' {
        $before = Get-TwinState
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $created = $run.result.after.certificate.thumbprint
        $undo = Get-Undo -Run $run
        $u1 = Invoke-RdpfixScript -Script $undo -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        @($u1.result.restored) | Should -Be @($OldThumb)
        @(Get-TwinCertificates -Store 'Remote Desktop' | ForEach-Object -Process { $_.Thumbprint }) | Should -Be @($OldThumb)
        # The certificate Windows created was backed up before it was removed.
        $u1.result.backup | Should -Not -BeNullOrEmpty
        Test-Path -LiteralPath (Join-Path $u1.result.backup ($created + '.reg')) -PathType Leaf | Should -BeTrue
        Test-Path -LiteralPath (Join-Path $u1.result.backup ($created + '.cer')) -PathType Leaf | Should -BeTrue
        $after = Get-TwinState
        foreach ($part in @('certificates', 'registry', 'acl', 'files', 'services')) {
            ($after[$part] | ConvertTo-Json -Depth 8 -Compress) | Should -Be ($before[$part] | ConvertTo-Json -Depth 8 -Compress) -Because $part
        }
        $u2 = Invoke-RdpfixScript -Script $undo -Folder $TestDrive -Name 'undo'
        $u2.result.status | Should -Be 'ok' -Because $u2.json
        Get-TwinStateJson | Should -Be ($after | ConvertTo-Json -Depth 8 -Compress)
    }

    It '-RegenerateCert -RemoveKey: the key container is removed too and the undo copies it back with its ACL' {
        $keyFile = Join-Path (Get-TwinMachineKeys) 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
        # An ACL Windows would not write itself, so the undo has to put this one back.
        Set-TwinPathSddl -Path $keyFile -Sddl 'O:SYG:SYD:(A;;FA;;;SY)(A;;0x120089;;;NS)(A;;FA;;;BA)'
        $before = Get-TwinState
        $run = Invoke-RdpfixScript -Script $Scripts.regenRemoveKey -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        @($run.result.removed)[0].keyRemoved | Should -BeTrue
        Test-Path -LiteralPath (Join-Path $run.result.backup @($run.result.removed)[0].keyFile) | Should -BeTrue
        Get-TwinCalls | Should -Contain ('TermService created certificate {0}' -f $run.result.after.certificate.thumbprint)
        $u1 = Invoke-RdpfixScript -Script (Get-Undo -Run $run) -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        # The key file's own ACL, checked directly (not only through the state comparison).
        Invoke-TwinGetRdpPathSddl -Path $keyFile | Should -Be 'O:SYG:SYD:(A;;FA;;;SY)(A;;FR;;;NS)(A;;FA;;;BA)'
        foreach ($part in @('certificates', 'registry', 'acl', 'files', 'services')) {
            ((Get-TwinState)[$part] | ConvertTo-Json -Depth 8 -Compress) | Should -Be ($before[$part] | ConvertTo-Json -Depth 8 -Compress) -Because $part
        }
    }

    It 'an orphaned pin (pinned-missing) is backed up and removed with the store certificate; the undo restores the pin' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'pinned-missing'
        $before = Get-TwinState
        $pin = Get-TwinRegistryValue -Path $RdpTcp -Name 'SSLCertificateSHA1Hash'
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.unpinned | Should -Be '5C1E9A770B44D2138E6FA03BC95127E80496BD62'
        Get-TwinRegistryValue -Path $RdpTcp -Name 'SSLCertificateSHA1Hash' | Should -BeNullOrEmpty
        Test-Path -LiteralPath (Join-Path $run.result.backup 'rdp-tcp.reg') -PathType Leaf | Should -BeTrue
        $run.result.after.certificate.source | Should -Be 'remote-desktop-store'
        $u1 = Invoke-RdpfixScript -Script (Get-Undo -Run $run) -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        (@(Get-TwinRegistryValue -Path $RdpTcp -Name 'SSLCertificateSHA1Hash') -join ',') | Should -Be (@($pin) -join ',')
        foreach ($part in @('certificates', 'registry', 'acl', 'files', 'services')) {
            ((Get-TwinState)[$part] | ConvertTo-Json -Depth 8 -Compress) | Should -Be ($before[$part] | ConvertTo-Json -Depth 8 -Compress) -Because $part
        }
    }

    It 'a valid pinned CA certificate is refused unless replacePinned; with it the pin goes, a self-signed one is made, the undo pins it again' {
        Set-PinnedCaCertificate
        $before = Get-TwinState
        $refused = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $refused.result.status | Should -Be 'failed'
        $refused.result.refused | Should -Be 'pinned'
        $refused.result.error | Should -Match ('pinned certificate {0}' -f $CaThumb)
        Get-TwinStateJson | Should -Be ($before | ConvertTo-Json -Depth 8 -Compress)
        Get-TwinCalls | Should -Not -Contain 'Restart-RdpWinService TermService'

        $run = Invoke-RdpfixScript -Script $Scripts.regenReplacePinned -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.unpinned | Should -Be $CaThumb
        Get-TwinRegistryValue -Path $RdpTcp -Name 'SSLCertificateSHA1Hash' | Should -BeNullOrEmpty
        $run.result.after.certificate.selfSigned | Should -BeTrue
        # The CA certificate in My is left where it is.
        @(Get-TwinCertificates -Store 'My' | ForEach-Object -Process { $_.Thumbprint }) | Should -Be @($CaThumb)
        $u1 = Invoke-RdpfixScript -Script (Get-Undo -Run $run) -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        $u1.result.after.pinned | Should -Be $CaThumb
        foreach ($part in @('certificates', 'registry', 'acl', 'files', 'services')) {
            ((Get-TwinState)[$part] | ConvertTo-Json -Depth 8 -Compress) | Should -Be ($before[$part] | ConvertTo-Json -Depth 8 -Compress) -Because $part
        }
    }

    It 'signed-in sessions block the restart (nothing changed) unless disconnectSessions; the own session alone does not' {
        Set-TwinValue -Name 'sessions' -Value @((New-Session -Id 2 -User 'WEB-01\alice'), (New-Session -Id 3 -User 'WEB-01\bob'))
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.plainDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change'
        @($dry.result.sessions.list).Count | Should -Be 2
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.refused | Should -Be 'sessions'
        $run.result.error | Should -Match 'disconnects 2 session\(s\): WEB-01\\alice \(session 2, Active, from LAPTOP-7\); WEB-01\\bob'
        $run.result.restarted | Should -BeFalse
        Get-TwinStateJson | Should -Be $before
        Get-TwinCalls | Should -Not -Contain 'Restart-RdpWinService TermService'

        $forced = Invoke-RdpfixScript -Script $Scripts.plainForce -Folder $TestDrive
        $forced.result.status | Should -Be 'changed' -Because $forced.json
        Get-TwinCalls | Should -Contain 'Restart-RdpWinService TermService'

        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Set-TwinValue -Name 'sessions' -Value @(New-Session -Id 2 -User 'WEB-01\admin')
        Set-TwinValue -Name 'ownSession' -Value 2
        $own = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $own.result.status | Should -Be 'changed' -Because $own.json
    }

    It 'a session list that cannot be read blocks the restart, and -RegenerateCert removes nothing' {
        Set-TwinValue -Name 'sessionError' -Value 'WTSEnumerateSessions did not answer within 15 s'
        $before = Get-TwinStateJson
        foreach ($name in @('plain', 'regen')) {
            $run = Invoke-RdpfixScript -Script $Scripts[$name] -Folder $TestDrive
            $run.result.status | Should -Be 'failed' -Because $name
            $run.result.refused | Should -Be 'sessions'
            $run.result.error | Should -Match 'could not be listed \(WTSEnumerateSessions did not answer within 15 s\)'
            $run.result.backup | Should -BeNullOrEmpty
            Get-TwinStateJson | Should -Be $before -Because $name
        }
    }

    It 'ServiceWontStop: failed with the service''s message; a plain restart changes nothing' {
        Set-TwinFault -Name 'ServiceWontStop'
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -Match 'cannot be stopped'
        Get-TwinStateJson | Should -Be $before
    }

    It 'ServiceWontStop with -RegenerateCert: failed, and the journaled undo puts the old certificate back' {
        $before = Get-TwinState
        Set-TwinFault -Name 'ServiceWontStop'
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -Match 'cannot be stopped'
        @($run.result.removed)[0].thumbprint | Should -Be $OldThumb
        Set-TwinFault -Name 'ServiceWontStop' -Value $false
        $u1 = Invoke-RdpfixScript -Script (Get-Undo -Run $run) -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        foreach ($part in @('certificates', 'registry', 'acl', 'files', 'services')) {
            ((Get-TwinState)[$part] | ConvertTo-Json -Depth 8 -Compress) | Should -Be ($before[$part] | ConvertTo-Json -Depth 8 -Compress) -Because $part
        }
    }

    It 'ServiceWontStart: failed, TermService stopped, the events are reported' {
        Set-TwinFault -Name 'ServiceWontStart'
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -Match 'Failed to start service'
        $run.result.restarted | Should -BeFalse
        $run.result.events | Should -Not -BeNullOrEmpty
        (Get-TwinService -Name 'TermService').Status | Should -Be 'Stopped'
    }

    It 'CertNotRegenerated: failed with "Windows did not create a new certificate"; the undo restores the old one' {
        $before = Get-TwinState
        Set-TwinFault -Name 'CertNotRegenerated'
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        @($run.result.problems) | Should -Contain 'Windows did not create a new certificate'
        @(Get-TwinCertificates -Store 'Remote Desktop').Count | Should -Be 0
        $u1 = Invoke-RdpfixScript -Script (Get-Undo -Run $run) -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        foreach ($part in @('certificates', 'registry', 'acl', 'files', 'services')) {
            ((Get-TwinState)[$part] | ConvertTo-Json -Depth 8 -Compress) | Should -Be ($before[$part] | ConvertTo-Json -Depth 8 -Compress) -Because $part
        }
    }

    It 'a backup that cannot be written (reg export fails, the backup root is a file, a BackupRoot under a file): failed, nothing removed' {
        foreach ($case in @('RegExportFails', 'DefaultRootIsFile', 'PinExportFails')) {
            Reset-WindowsTwin -Root $TestDrive -Fixture $(if ($case -eq 'PinExportFails') { 'pinned-missing' } else { 'healthy-2019' })
            if ($case -eq 'DefaultRootIsFile') {
                $null = New-Item -ItemType Directory -Path (Join-Path $env:ProgramData 'rdpfix') -Force
                Set-Content -LiteralPath (Join-Path $env:ProgramData 'rdpfix/backup') -Value 'not a folder'
            } else { Set-TwinFault -Name 'RegExportFails' }
            $before = Get-TwinStateJson
            $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
            $run.result.status | Should -Be 'failed' -Because $case
            $run.result.error | Should -Not -BeNullOrEmpty -Because $case
            @($run.result.removed).Count | Should -Be 0 -Because $case
            $run.result.restarted | Should -BeFalse -Because $case
            Get-TwinStateJson | Should -Be $before -Because $case
        }
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $blocker = Join-Path $TestDrive 'not-a-folder'
        Set-Content -LiteralPath $blocker -Value 'x'
        $s = @(Invoke-RdpfixEmit -Request @(@{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = 2; regenerateCert = $true; backupRoot = 'C:\placeholder' }, $false) }))
        # The builder takes a Windows path; the twin's file system is POSIX, so the literal is swapped for the blocker's child.
        $script = $s[0].script.Replace("'C:\placeholder'", ("'{0}'" -f (Join-Path $blocker 'backup')))
        $script | Should -Match ([regex]::Escape($blocker))
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $script -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -Not -BeNullOrEmpty
        Get-TwinStateJson | Should -Be $before
    }

    It 'the in-server handshake check is the last read-back: healthy after a plain restart, checked once' {
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'healthy'
        $run.result.handshake.attempts | Should -Be 1
        @(Get-TwinCalls | Where-Object -FilterScript { $_ -like 'Test-RdpHandshake *' }) | Should -Be @('Test-RdpHandshake 127.0.0.1:3389')
    }

    It 'a restart that leaves the key unusable (NETWORK SERVICE denied) is failed with certificate-key-unusable, not changed' {
        $keyFile = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft/Crypto/RSA/MachineKeys/f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
        Set-TwinPathSddl -Path $keyFile -Sddl 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)'
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        $run.result.restarted | Should -BeTrue
        $run.result.after.listening | Should -BeTrue -Because 'the listener is up: only a client''s handshake shows that the restart did not fix it'
        $run.result.handshake.cause | Should -Be 'certificate-key-unusable'
        $run.result.handshake.attempts | Should -Be 3 -Because 'a listener coming up after a restart gets three checks before it is judged'
        @($run.result.problems) | Should -Be @(('after the change the RDP handshake from the server itself is certificate-key-unusable: {0}' -f $run.result.handshake.detail))
    }

    It 'a listener that still hangs after the restart is failed with listener-hung; one the restart clears is changed' {
        Set-TwinFault -Name 'ListenerHung'
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'listener-hung'

        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Set-TwinFault -Name 'ListenerHung' -Value 'until-restart'
        $run = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'healthy'
    }

    It 'a regenerated certificate is verified by the handshake: the new one is what a client gets' {
        Set-TwinValue -Name now -Value ([datetime]::Parse('2025-08-01T12:00:00Z', [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal))
        $plain = Invoke-RdpfixScript -Script $Scripts.plain -Folder $TestDrive
        $plain.result.status | Should -Be 'failed' -Because 'a restart does not renew an expired certificate'
        $plain.result.handshake.cause | Should -Be 'certificate-expired'
        $plain.result.handshake.attempts | Should -Be 1 -Because 'an expired certificate is not a listener still coming up'
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'healthy'
        $run.result.handshake.detail | Should -Match ([regex]::Escape([string]$run.result.after.certificate.thumbprint))
    }
}
