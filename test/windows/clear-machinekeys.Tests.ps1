# clear-machinekeys, every mode, run for real against the Windows twin: the scripts are the real generated
# text (test/windows/emit.ts), the undo is the one the journal would record from the real result
# (clearChanges), replayed newest change first as undo.ts does.
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $script:SessionEnv = 'S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833'
    $script:DefaultFolder = 'O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)'
    $script:Container = 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
    $script:OldThumb = '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41'
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2 }, $true) },
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2 }, $false) },
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2; renameFolder = $true; force = $true; disconnectSessions = $true }, $true) },
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2; renameFolder = $true; force = $true; disconnectSessions = $true }, $false) },
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2; regenerate = $false; restart = $false }, $false) }
    ))
    foreach ($a in $s) { if ($a.error) { throw $a.error } }
    $script:Scripts = @{ repairDry = $s[0].script; repair = $s[1].script; renameDry = $s[2].script; rename = $s[3].script; aclOnly = $s[4].script }
    # The twin's files live under TestDrive (a POSIX path); clearChanges embeds only absolute Windows
    # paths in an undo (targetPath), as a real target reports them. So the raw result goes to the
    # journal with the TestDrive prefix written as 'C:\<rest>', and the journaled scripts get the
    # POSIX prefix back, only in their quoted literals (the restart-termserv test does the same).
    function Get-Undo {
        # The undo scripts clearChanges journals for this run, newest change first (undo.ts order).
        param([Parameter(Mandatory = $true)]$Run, $Options = @{ timeoutSeconds = 2 })
        $posix = (Resolve-Path -LiteralPath $TestDrive).ProviderPath.TrimEnd('/')
        $win = 'C:\' + $posix.TrimStart('/')
        $raw = $Run.json.Replace(('"' + $posix), ('"' + $win.Replace('\', '\\'))) | ConvertFrom-Json
        $a = @(Invoke-RdpfixEmit -Request @(@{ undo = 'clear-machinekeys'; raw = $raw; options = $Options }))
        if ($a[0].PSObject.Properties['error']) { throw $a[0].error }
        $changes = @($a[0].changes)
        [array]::Reverse($changes)
        return @($changes | ForEach-Object -Process {
            if ($_.undo.kind -ne 'powershell') { throw ('the journal recorded no script: {0}' -f ($_.undo | ConvertTo-Json -Compress)) }
            ([string]$_.undo.script).Replace(("'" + $win), ("'" + $posix))
        })
    }
    function Get-MachineKeysPath { param([string]$Leaf = '') $p = Get-TwinMachineKeys; if ($Leaf) { return (Join-Path -Path $p -ChildPath $Leaf) }; return $p }
    function Get-KeySddl {
        # A path's descriptor as Get-TwinState holds it (keys relative to ProgramData, lower case).
        param([string]$Path)
        return (Get-TwinState).acl[([System.IO.Path]::GetFullPath($Path).ToLowerInvariant().Substring($env:ProgramData.Length))]
    }
    function Get-Part {
        # Parts of the state as JSON, for equality; -Under keeps only acl and file entries of the live MachineKeys folder.
        param([string[]]$Name, [switch]$Under)
        $st = Get-TwinState
        $mk = '/microsoft/crypto/rsa/machinekeys'
        if ($Under) {
            $acl = [ordered]@{}
            foreach ($k in $st.acl.Keys) { if ($k -eq $mk -or $k.StartsWith($mk + '/')) { $acl[$k] = $st.acl[$k] } }
            $st.acl = $acl
            $st.files = @($st.files | Where-Object -FilterScript { $_.ToLowerInvariant() -eq $mk -or $_.ToLowerInvariant().StartsWith($mk + '/') })
        }
        return (($Name | ForEach-Object -Process { $st[$_] }) | ConvertTo-Json -Depth 8 -Compress)
    }
}

Describe 'clear-machinekeys on the twin' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'key-unreadable-2019'
        Use-WindowsTwin
    }

    It 'repair: dry run would change, the twin unchanged; apply sets the container to the 2019 set with owner SYSTEM and the folder to the default, icacls /save backup names the container; again is ok' {
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.repairDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change' -Because $dry.json
        @($dry.result.plan.containers) | Should -Be @($Container)
        $dry.result.plan.folder | Should -BeTrue
        Get-TwinStateJson | Should -Be $before
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix') | Should -BeFalse

        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $key = Get-MachineKeysPath $Container
        # The build's set: SYSTEM Full, NETWORK SERVICE Read, NT SERVICE\SessionEnv Full; the other entry (BA) kept.
        $acl = ConvertFrom-TwinSddl -Sddl (Get-KeySddl $key)
        $acl.owner | Should -Be 'S-1-5-18'
        @($acl.aces | Where-Object { $_.type -eq 'A' } | ForEach-Object { '{0}={1:x}' -f $_.sid, $_.mask } | Sort-Object) | Should -Be @('S-1-5-18=1f01ff', 'S-1-5-20=120089', 'S-1-5-32-544=1f01ff', ('{0}=1f01ff' -f $SessionEnv))
        Get-KeySddl (Get-MachineKeysPath) | Should -Be $DefaultFolder
        # The backup the result names: icacls /save of the folder (naming the container), the SDDLs, a copy of the key.
        $run.result.backup | Should -Not -BeNullOrEmpty
        $saved = Join-Path $run.result.backup 'MachineKeys.acl'
        Test-Path -LiteralPath $saved | Should -BeTrue
        [System.IO.File]::ReadAllText($saved, [System.Text.Encoding]::Unicode) | Should -Match ([regex]::Escape('MachineKeys\' + $Container))
        Get-Content -LiteralPath (Join-Path $run.result.backup ($Container + '.sddl.txt')) -Raw | Should -Match ([regex]::Escape('O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)'))
        Get-Content -LiteralPath (Join-Path $run.result.backup 'MachineKeys.sddl.txt') -Raw | Should -Match ([regex]::Escape('O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)'))
        Test-Path -LiteralPath (Join-Path $run.result.backup $Container) | Should -BeTrue
        $run.result.keyUsable | Should -BeTrue
        # --restart (the default): TermService restarted so it loads the repaired key.
        $run.result.restart.status | Should -Be 'changed'
        Get-TwinCalls | Should -Contain 'Restart-RdpWinService TermService'

        $afterApply = Get-TwinStateJson
        $again = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $again.result.status | Should -Be 'ok' -Because $again.json
        Get-TwinStateJson | Should -Be $afterApply
    }

    It 'repair, then the ACL undo the journal records restores every descriptor exactly; the undo twice is ok' {
        $before = Get-Part acl
        # Not vacuous: the folder and the container are both in the state, and the repair changes both.
        (Get-TwinState).acl.Count | Should -Be 2
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        Get-Part acl | Should -Not -Be $before
        $undo = @(Get-Undo -Run $run)
        $undo.Count | Should -Be 1
        $u1 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        @($u1.result.restored).Count | Should -Be 2
        (Get-TwinState).acl.Count | Should -Be 2
        Get-Part acl | Should -Be $before
        $u2 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u2.result.status | Should -Be 'ok' -Because $u2.json
        Get-Part acl | Should -Be $before
    }

    It 'healthy 2019: no evidence, ok, nothing changed and no backup' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'ok' -Because $run.json
        $run.result.note | Should -Match 'no evidence'
        Get-TwinStateJson | Should -Be $before
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix') | Should -BeFalse
    }
    It '--regenerate: as SYSTEM, a key that cannot be opened although its ACL is right gets a new certificate; the journaled undos put the old one back' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        # The same certificate and container, but the key does not open even as SYSTEM (a corrupt container).
        Add-TwinCertificate -Thumbprint $OldThumb -Subject 'CN=web-01' -KeyName $Container -KeyError 'Keyset does not exist'
        $before = Get-Part certificates, acl, files
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        @($run.result.evidence) | Should -Contain 'key-open-failed'
        $run.result.regenerate.status | Should -Be 'changed'
        $run.result.regenerate.thumbprintBefore | Should -Be $OldThumb
        $new = @(Get-TwinCertificates)
        $new.Count | Should -Be 1
        $new[0].Thumbprint | Should -Not -Be $OldThumb
        $run.result.regenerate.thumbprintAfter | Should -Be $new[0].Thumbprint
        $run.result.keyUsable | Should -BeTrue
        # The old certificate and its key were backed up before they were removed.
        $regenBackup = $run.result.regenerate.backup
        foreach ($f in @(($OldThumb + '.cer'), ($OldThumb + '.reg'), $Container)) { Test-Path -LiteralPath (Join-Path $regenBackup $f) | Should -BeTrue -Because $f }

        $undo = @(Get-Undo -Run $run)
        $undo.Count | Should -Be 1
        $u1 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        Get-Part certificates, acl, files | Should -Be $before
        $u2 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u2.result.status | Should -Be 'ok' -Because $u2.json
        Get-Part certificates, acl, files | Should -Be $before
    }

    It '--no-regenerate: the same unusable key is reported, not regenerated, and nothing is changed' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Add-TwinCertificate -Thumbprint $OldThumb -Subject 'CN=web-01' -KeyName $Container -KeyError 'Keyset does not exist'
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.aclOnly -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        @($run.result.problems) | Should -Contain 'the key is still unusable (regeneration not allowed)'
        Get-TwinStateJson | Should -Be $before
    }

    It '--rename-folder: dry run changes nothing; apply renames MachineKeys, starts a default folder, removes and regenerates the certificate; again is ok' {
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.renameDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change' -Because $dry.json
        $dry.result.plan.rename | Should -BeTrue
        Get-TwinStateJson | Should -Be $before

        $run = Invoke-RdpfixScript -Script $Scripts.rename -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.mode | Should -Be 'rename'
        Test-Path -LiteralPath $run.result.renamed.to | Should -BeTrue
        # The old container travelled with the renamed folder, its ACL with it (NTFS).
        Test-Path -LiteralPath (Join-Path $run.result.renamed.to $Container) | Should -BeTrue
        Get-KeySddl (Get-MachineKeysPath) | Should -Be $DefaultFolder
        @($run.result.removed | ForEach-Object { $_.thumbprint }) | Should -Be @($OldThumb)
        $new = @(Get-TwinCertificates)
        $new.Count | Should -Be 1
        $new[0].Thumbprint | Should -Not -Be $OldThumb
        $run.result.keyUsable | Should -BeTrue
        foreach ($f in @('MachineKeys.acl', 'MachineKeys.sddl.txt', ($OldThumb + '.cer'), ($OldThumb + '.reg'))) { Test-Path -LiteralPath (Join-Path $run.result.backup $f) | Should -BeTrue -Because $f }

        $afterApply = Get-TwinStateJson
        $again = Invoke-RdpfixScript -Script $Scripts.rename -Folder $TestDrive
        $again.result.status | Should -Be 'ok' -Because $again.json
        Get-TwinStateJson | Should -Be $afterApply
    }

    It '--rename-folder, then its journaled undo: the old folder (ACLs, files) and the old certificate are back; the undo twice is safe' {
        $before = Get-Part certificates, acl, files -Under
        $run = Invoke-RdpfixScript -Script $Scripts.rename -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        Get-Part certificates, acl, files -Under | Should -Not -Be $before
        $undo = @(Get-Undo -Run $run)
        $undo.Count | Should -Be 1
        $u1 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        # The fresh folder is kept, not deleted (it may hold keys created meanwhile): in the run's
        # protected backup folder, so nothing new is left beside MachineKeys.
        Test-Path -LiteralPath $u1.result.movedAside | Should -BeTrue
        $u1.result.movedAside | Should -BeLike ('{0}*' -f $run.result.backup)
        @(Get-ChildItem -LiteralPath (Split-Path -Path (Get-MachineKeysPath) -Parent) -Filter 'MachineKeys_rdpfix_*').Count | Should -Be 0
        Get-Part certificates, acl, files -Under | Should -Be $before
        $u2 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u2.result.status | Should -BeIn @('ok', 'failed') -Because $u2.json
        if ($u2.result.status -eq 'failed') { $u2.result.error | Should -Match 'already put back' }
        Get-Part certificates, acl, files -Under | Should -Be $before
    }

    It 'not SYSTEM: a container ACL this administrator cannot read is refused with the reason, nothing changed' {
        Set-TwinValue -Name runAs -Value 'S-1-5-21-1004336348-1177238915-682003330-500'
        Set-TwinUnreadable -Path (Get-MachineKeysPath $Container)
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        $run.result.error | Should -Match ('cannot read the ACL of {0} as S-1-5-21-[0-9-]+-500: from build 17763 Administrators are not in it; run this as SYSTEM' -f $Container)
        Get-TwinStateJson | Should -Be $before
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix') | Should -BeFalse
    }

    It 'faults: icacls fails (the /save backup is not written), the backup root is a file: failed, one JSON line, nothing changed' {
        foreach ($fault in @('IcaclsFails', 'BackupUnwritable')) {
            Reset-WindowsTwin -Root $TestDrive -Fixture 'key-unreadable-2019'
            if ($fault -eq 'BackupUnwritable') {
                $null = New-Item -ItemType Directory -Path (Join-Path $env:ProgramData 'rdpfix') -Force
                Set-Content -LiteralPath (Join-Path $env:ProgramData 'rdpfix/backup') -Value 'not a folder'
            } else { Set-TwinFault -Name $fault }
            $before = Get-TwinStateJson
            $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
            $run.result.status | Should -Be 'failed' -Because $fault
            $run.result.error | Should -Not -BeNullOrEmpty -Because $fault
            if ($fault -eq 'IcaclsFails') { $run.result.error | Should -Match 'backup failed: .*nothing was changed' }
            Get-TwinStateJson | Should -Be $before -Because $fault
            @($run.result.changed.containers).Count | Should -Be 0
        }
    }

    It 'icacls /grant:r fails after the folder and the deny were already changed: failed, and the journaled undo restores both' {
        # A deny for NETWORK SERVICE: /remove:d takes it away before /grant:r fails.
        Set-TwinPathSddl -Path (Get-MachineKeysPath $Container) -Sddl 'O:SYG:SYD:(D;;FR;;;NS)(A;;FA;;;SY)(A;;FA;;;BA)'
        Set-TwinFault -Name IcaclsFails -Value '/grant:r'
        $before = Get-Part acl
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        $run.result.error | Should -Match 'icacls.exe .* failed with exit code 5'
        Get-Part acl | Should -Not -Be $before
        Set-TwinFault -Name IcaclsFails -Value $false
        foreach ($u in @(Get-Undo -Run $run)) {
            $r = Invoke-RdpfixScript -Script $u -Folder $TestDrive -Name 'undo'
            $r.result.status | Should -Be 'changed' -Because $r.json
        }
        Get-Part acl | Should -Be $before
    }

    It 'the handshake checked from the server itself ends the repair: through the restart it makes, or by itself when it makes none' {
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'healthy'
        $run.result.restart.handshake.cause | Should -Be 'healthy' -Because 'the restart verified it; the repair reports that check'
        @(Get-TwinCalls | Where-Object -FilterScript { $_ -like 'Test-RdpHandshake *' }).Count | Should -Be 1

        Reset-WindowsTwin -Root $TestDrive -Fixture 'key-unreadable-2019'
        $acl = Invoke-RdpfixScript -Script $Scripts.aclOnly -Folder $TestDrive
        $acl.result.status | Should -Be 'changed' -Because $acl.json
        $acl.result.restart | Should -BeNullOrEmpty
        $acl.result.handshake.cause | Should -Be 'healthy'
    }

    It 'a repair after which a client''s handshake still fails (TLS 1.2 and older disabled in SCHANNEL) is failed with that cause' {
        foreach ($v in @('TLS 1.0', 'TLS 1.1', 'TLS 1.2')) { Set-TwinRegistryKey -Path ('HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\{0}\Server' -f $v) -Values @{ Enabled = 0 } }
        $acl = Invoke-RdpfixScript -Script $Scripts.aclOnly -Folder $TestDrive
        $acl.result.status | Should -Be 'failed' -Because $acl.json
        $acl.result.handshake.cause | Should -Be 'certificate-key-unusable' -Because 'with no TLS version left the listener closes after the ClientHello, as with an unusable key'
        $acl.result.keyUsable | Should -BeTrue
        @($acl.result.changed.containers).Count | Should -Be 1 -Because 'the repair happened and stays journaled'
        [System.Text.Encoding]::UTF8.GetByteCount($acl.json) | Should -BeLessOrEqual 4096 -Because 'Run Command keeps the last 4,096 bytes'

        # The same through the repair's own restart: the check's detail is not repeated in the restart's summary.
        Reset-WindowsTwin -Root $TestDrive -Fixture 'key-unreadable-2019'
        foreach ($v in @('TLS 1.0', 'TLS 1.1', 'TLS 1.2')) { Set-TwinRegistryKey -Path ('HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\{0}\Server' -f $v) -Values @{ Enabled = 0 } }
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'certificate-key-unusable'
        [System.Text.Encoding]::UTF8.GetByteCount($run.json) | Should -BeLessOrEqual 4096 -Because $run.json
    }
}
