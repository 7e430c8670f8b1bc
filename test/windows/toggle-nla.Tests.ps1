# toggle-nla, every mode, run for real against the Windows twin: the scripts are the real generated
# text (test/windows/emit.ts), the undo is the one the journal would record from the real result.
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $script:RdpTcp = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'
    $script:Policy = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'disable' }, $true) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'disable' }, $false) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'enable' }, $false) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'status' }, $false) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'disable'; forSeconds = 3600 }, $false) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'restore' }, $false) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'restore' }, $true) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'disable'; policy = $true }, $false) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'set'; securityLayer = 'rdp' }, $false) },
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'set'; securityLayer = 'tls'; minEncryptionLevel = 1 }, $false) }
    ))
    $script:Scripts = @{ disableDry = $s[0].script; disable = $s[1].script; enable = $s[2].script; status = $s[3].script; disableFor = $s[4].script; restore = $s[5].script; restoreDry = $s[6].script; disablePolicy = $s[7].script; layerRdp = $s[8].script; badCombo = $s[9].script }
    function Get-Undo {
        param($Raw, $Options)
        $a = @(Invoke-RdpfixEmit -Request @(@{ undo = 'toggle-nla'; raw = $Raw; options = $Options }))
        return @($a[0].changes | ForEach-Object -Process { $_.undo.script })
    }
}

Describe 'toggle-nla on the twin' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
    }

    It 'disable: dry run would change, the twin unchanged; apply changes NLA to 0 and writes the backup; again is ok' {
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.disableDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change'
        Get-TwinStateJson | Should -Be $before
        Get-ChildItem -LiteralPath $env:ProgramData -Recurse -Filter '*toggle-nla*' | Should -BeNullOrEmpty

        $run = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        Get-TwinRegistryValue -Path $RdpTcp -Name 'UserAuthentication' | Should -Be 0
        $run.result.backup | Should -Not -BeNullOrEmpty
        Test-Path -LiteralPath (Join-Path $run.result.backup 'rdp-tcp.reg') | Should -BeTrue
        Test-Path -LiteralPath (Join-Path $run.result.backup 'values.json') | Should -BeTrue
        (Get-Content -LiteralPath (Join-Path $run.result.backup 'values.json') -Raw | ConvertFrom-Json).local.UserAuthentication.before | Should -Be 1
        $run.lines | Should -Contain ('rdpfix: backup on this server: {0}' -f $run.result.backup)
        @($run.result.changed)[0].via | Should -Be 'wmi'

        $afterApply = Get-TwinStateJson
        $again = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $again.result.status | Should -Be 'ok'
        Get-TwinStateJson | Should -Be $afterApply
    }

    It 'disable, then the undo the journal records puts the state back exactly; the undo twice is ok' {
        $before = Get-TwinState
        $run = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $run.result.status | Should -Be 'changed'
        $undo = @(Get-Undo -Raw $run.result -Options @{ mode = 'disable' })
        $undo.Count | Should -Be 1
        $u1 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        (Get-TwinState).registry | ConvertTo-Json -Depth 6 | Should -Be ($before.registry | ConvertTo-Json -Depth 6)
        $u2 = Invoke-RdpfixScript -Script $undo[0] -Folder $TestDrive -Name 'undo'
        $u2.result.status | Should -Be 'ok'
    }

    It 'enable on a server where NLA is off changes it back to 1' {
        Set-TwinRegistryKey -Path $RdpTcp -Values @{ UserAuthentication = 0 }
        $run = Invoke-RdpfixScript -Script $Scripts.enable -Folder $TestDrive
        $run.result.status | Should -Be 'changed'
        Get-TwinRegistryValue -Path $RdpTcp -Name 'UserAuthentication' | Should -Be 1
    }

    It 'status reads and changes nothing' {
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.status -Folder $TestDrive
        $run.result.status | Should -Be 'ok' -Because $run.json
        Get-TwinStateJson | Should -Be $before
    }

    It 'WMI refusing falls back to a registry write, read back' {
        Set-TwinFault -Name 'WmiRefuses'
        $run = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        @($run.result.changed)[0].via | Should -Be 'registry'
        Get-TwinRegistryValue -Path $RdpTcp -Name 'UserAuthentication' | Should -Be 0
    }

    It 'disable --for registers the expiry task; running the task''s own command puts NLA back and removes the task' {
        $run = Invoke-RdpfixScript -Script $Scripts.disableFor -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $task = Get-TwinTask -Name 'rdpfix-reenable-nla'
        $task | Should -Not -BeNullOrEmpty
        Get-TwinRegistryValue -Path $RdpTcp -Name 'UserAuthentication' | Should -Be 0
        # What the scheduler would run: powershell.exe -EncodedCommand <the registered command>, here in this session.
        $loader = [System.Text.Encoding]::Unicode.GetString([Convert]::FromBase64String($task.encodedCommand))
        & ([scriptblock]::Create($loader))
        Get-TwinRegistryValue -Path $RdpTcp -Name 'UserAuthentication' | Should -Be 1
        Get-TwinTask -Name 'rdpfix-reenable-nla' | Should -BeNullOrEmpty
        Get-Content -LiteralPath (Join-Path $env:ProgramData 'rdpfix/log/toggle-nla-expiry.log') -Raw | Should -Match 'expiry: changed; restored local UserAuthentication=1'
    }

    It 'a task that did not register fails the step before any value changes' {
        Set-TwinFault -Name 'TaskNotRegistered'
        $before = (Get-TwinState).registry | ConvertTo-Json -Depth 6
        $run = Invoke-RdpfixScript -Script $Scripts.disableFor -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -Match 'expiry task was not registered; nothing was changed'
        (Get-TwinState).registry | ConvertTo-Json -Depth 6 | Should -Be $before
    }

    It '--restore puts back the newest backup; dry run first changes nothing; a second restore finds none left' {
        $null = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $after = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.restoreDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change'
        Get-TwinStateJson | Should -Be $after
        $r = Invoke-RdpfixScript -Script $Scripts.restore -Folder $TestDrive
        $r.result.status | Should -Be 'changed' -Because $r.json
        Get-TwinRegistryValue -Path $RdpTcp -Name 'UserAuthentication' | Should -Be 1
        $again = Invoke-RdpfixScript -Script $Scripts.restore -Folder $TestDrive
        $again.result.status | Should -Be 'ok'
        $again.result.note | Should -Match 'no toggle-nla backup left'
    }

    It 'a Group Policy value wins: without --policy the change is refused and nothing changes; with it both change and the undo restores both' {
        Set-TwinRegistryKey -Path $Policy -Values @{ UserAuthentication = 1 }
        $untouched = Get-TwinStateJson
        $plain = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $plain.result.status | Should -Be 'failed'
        $plain.result.refused | Should -Be 'policy-override'
        $plain.result.error | Should -Match 'Pass --policy'
        Get-TwinStateJson | Should -Be $untouched
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $Policy -Values @{ UserAuthentication = 1 }
        $before = (Get-TwinState).registry | ConvertTo-Json -Depth 6
        $run = Invoke-RdpfixScript -Script $Scripts.disablePolicy -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        Get-TwinRegistryValue -Path $Policy -Name 'UserAuthentication' | Should -Be 0
        Test-Path -LiteralPath (Join-Path $run.result.backup 'policy.reg') | Should -BeTrue
        foreach ($u in @(Get-Undo -Raw $run.result -Options @{ mode = 'disable'; policy = $true })) {
            (Invoke-RdpfixScript -Script $u -Folder $TestDrive -Name 'undo').result.status | Should -BeIn @('changed', 'ok')
        }
        (Get-TwinState).registry | ConvertTo-Json -Depth 6 | Should -Be $before
    }

    It 'faults: a registry write that throws, a reg export that fails, a backup that cannot be written: failed, one JSON line, nothing changed' {
        foreach ($fault in @('RegExportFails', 'WmiThrows+RegistryWriteThrows', 'BackupUnwritable')) {
            Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
            if ($fault -eq 'BackupUnwritable') {
                # The backup root is a file: creating the backup folder under it fails for real.
                $null = New-Item -ItemType Directory -Path (Join-Path $env:ProgramData 'rdpfix') -Force
                Set-Content -LiteralPath (Join-Path $env:ProgramData 'rdpfix/backup') -Value 'not a folder'
            } else { foreach ($f in $fault.Split('+')) { Set-TwinFault -Name $f } }
            $before = (Get-TwinState).registry | ConvertTo-Json -Depth 6
            $run = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
            $run.result.status | Should -Be 'failed' -Because $fault
            $run.result.error | Should -Not -BeNullOrEmpty
            (Get-TwinState).registry | ConvertTo-Json -Depth 6 | Should -Be $before -Because $fault
        }
    }

    It 'an invalid combination (TLS with Low encryption) is refused before anything changes' {
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.badCombo -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.refused | Should -Be 'invalid-combination'
        Get-TwinStateJson | Should -Be $before
    }

    It 'the handshake checked from the server itself ends a change: healthy after disable; Standard RDP Security passes only when it was asked for' {
        $run = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'healthy'

        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $rdp = Invoke-RdpfixScript -Script $Scripts.layerRdp -Folder $TestDrive
        $rdp.result.status | Should -Be 'changed' -Because 'SecurityLayer 0 was the request, and the listener answers with it'
        $rdp.result.handshake.cause | Should -Be 'security-layer-mismatch'

        # RDP security already in force and NLA turned off: a default client falls back and connects.
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $RdpTcp -Values @{ SecurityLayer = 0 }
        $off = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $off.result.status | Should -Be 'changed' -Because $off.json
        $off.result.handshake.cause | Should -Be 'security-layer-mismatch'

        # The same answer when it was not asked for (a Group Policy SecurityLayer 0 this change leaves)
        # is a failed change: NLA is on, and CredSSP needs TLS.
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Set-TwinRegistryKey -Path $Policy -Values @{ SecurityLayer = 0 }
        Set-TwinRegistryKey -Path $RdpTcp -Values @{ UserAuthentication = 0 }
        $nla = Invoke-RdpfixScript -Script $Scripts.enable -Folder $TestDrive
        $nla.result.status | Should -Be 'failed' -Because $nla.json
        $nla.result.handshake.cause | Should -Be 'security-layer-mismatch'
    }

    It 'a change on a server whose key TermService cannot read is failed with certificate-key-unusable, and still undoable' {
        $keyFile = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft/Crypto/RSA/MachineKeys/f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
        Set-TwinPathSddl -Path $keyFile -Sddl 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)'
        $run = Invoke-RdpfixScript -Script $Scripts.disable -Folder $TestDrive
        $run.result.status | Should -Be 'failed' -Because $run.json
        $run.result.handshake.cause | Should -Be 'certificate-key-unusable'
        @($run.result.changed).Count | Should -Be 1 -Because 'the value did change: the record and the undo keep it'
        $run.result.record | Should -Not -BeNullOrEmpty
    }
}
