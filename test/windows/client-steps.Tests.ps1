# The client steps (disable-rdp-udp, lower-mtu) and test-vpn-latency's route lookup, run for real on
# the Windows twin: the real generated scripts (test/windows/emit.ts), the undo the journal would
# record from the real result. Their backup folder is the default C:\ProgramData\rdpfix\backup: a
# C: drive rooted at the twin's folder makes that the twin's $env:ProgramData, as on Windows.
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $script:UdpKey = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services\Client'
    # 'Conexion de area local' with its accents, built from code points so this file stays ASCII.
    $script:Unicode = 'Conexi{0}n de {1}rea local' -f [char]0xF3, [char]0xE1
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'udpPolicyScript'; args = @(@{ value = 1; dryRun = $true }) },
        @{ build = 'udpPolicyScript'; args = @(@{ value = 1 }) },
        @{ build = 'udpPolicyScript'; args = @(@{ value = $null; dryRun = $true }) },
        @{ build = 'udpPolicyScript'; args = @(@{ value = $null }) },
        @{ build = 'udpPolicyScript'; args = @(@{ value = 0 }) },
        @{ build = 'mtuScript'; args = @(@{ interface = 'Ethernet'; mtu = 1400; dryRun = $true }) },
        @{ build = 'mtuScript'; args = @(@{ interface = 'Ethernet'; mtu = 1400 }) },
        @{ build = 'mtuScript'; args = @(@{ interface = 'Ethernet'; mtu = 1400; temporary = $true }) },
        @{ build = 'mtuScript'; args = @(@{ interface = 'WLAN 7'; mtu = 1400 }) },
        @{ build = 'mtuScript'; args = @(@{ interface = $Unicode; mtu = 1380 }) },
        @{ build = 'windowsRouteScript'; args = @('192.0.2.55') }
    ))
    $script:Scripts = @{
        udpDry = $s[0].script; udp = $s[1].script; enableDry = $s[2].script; enable = $s[3].script; restore0 = $s[4].script
        mtuDry = $s[5].script; mtu = $s[6].script; mtuTemp = $s[7].script; mtuMissing = $s[8].script; mtuUnicode = $s[9].script; route = $s[10].script
    }
    function Get-Undo {
        param([string]$Step, $Raw, $Options = @{})
        $a = @(Invoke-RdpfixEmit -Request @(@{ undo = $Step; raw = $Raw; options = $Options }))
        return @($a[0].changes | ForEach-Object -Process { $_.undo })
    }
    function Get-Registry { return ((Get-TwinState).registry | ConvertTo-Json -Depth 6) }
    function Set-BackupUnwritable {
        # The backup folder's place is taken by a file: creating the folder fails for real.
        $null = New-Item -ItemType Directory -Path (Join-Path $env:ProgramData 'rdpfix') -Force
        Set-Content -LiteralPath (Join-Path $env:ProgramData 'rdpfix/backup') -Value 'not a folder'
    }
}

Describe 'disable-rdp-udp on the twin' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $null = New-PSDrive -Name C -PSProvider FileSystem -Root $TestDrive -Scope Global
        Use-WindowsTwin
    }
    AfterEach { Remove-PSDrive -Name C -Scope Global -Force -ErrorAction SilentlyContinue }

    It 'the policy key is missing on the fixture (so the next case really creates it)' {
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix') | Should -BeFalse
        Get-TwinRegistryValue -Path $UdpKey -Name 'fClientDisableUDP' | Should -BeNullOrEmpty
        (Get-TwinState).registry.Contains('hklm\software\policies\microsoft\windows nt\terminal services\client') | Should -BeFalse
    }

    It 'disable with the key missing: dry run changes nothing; apply creates the key with 1 (no backup: nothing to export); again is ok' {
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.udpDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change' -Because $dry.json
        Get-TwinStateJson | Should -Be $before

        $run = Invoke-RdpfixScript -Script $Scripts.udp -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.keyExisted | Should -BeFalse
        $run.result.before | Should -BeNullOrEmpty
        $run.result.after | Should -Be 1
        $run.result.backup | Should -BeNullOrEmpty
        Get-TwinRegistryValue -Path $UdpKey -Name 'fClientDisableUDP' | Should -Be 1
        (Get-TwinState).registry['hklm\software\policies\microsoft\windows nt\terminal services\client']['fClientDisableUDP'] | Should -Be 'DWord:1'
        @($run.result.restore)[0] | Should -Match "^Remove-ItemProperty -LiteralPath 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services\\Client' -Name 'fClientDisableUDP'$"

        $after = Get-TwinStateJson
        $again = Invoke-RdpfixScript -Script $Scripts.udp -Folder $TestDrive
        $again.result.status | Should -Be 'ok'
        Get-TwinStateJson | Should -Be $after
    }

    It 'disable with the key missing, then the journaled undo removes the value: only the (empty) created keys remain; twice is ok' {
        $before = (Get-TwinState).registry
        $run = Invoke-RdpfixScript -Script $Scripts.udp -Folder $TestDrive
        $run.result.status | Should -Be 'changed'
        $undo = @(Get-Undo -Step 'disable-rdp-udp' -Raw $run.result)
        $undo.Count | Should -Be 1
        $undo[0].kind | Should -Be 'powershell'
        $u1 = Invoke-RdpfixScript -Script $undo[0].script -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        Get-TwinRegistryValue -Path $UdpKey -Name 'fClientDisableUDP' | Should -BeNullOrEmpty
        # The undo puts the VALUE back (absent), not the key: the keys New-Item -Force created stay,
        # empty. Every key that existed before is exactly as it was.
        $now = (Get-TwinState).registry
        foreach ($k in $before.Keys) { ($now[$k] | ConvertTo-Json -Depth 4) | Should -Be ($before[$k] | ConvertTo-Json -Depth 4) -Because $k }
        $extra = @($now.Keys | Where-Object -FilterScript { -not $before.Contains($_) })
        $extra | Should -Contain 'hklm\software\policies\microsoft\windows nt\terminal services\client'
        foreach ($k in $extra) { $now[$k].Count | Should -Be 0 -Because "$k was created by the change and must be empty after the undo" }
        $u2 = Invoke-RdpfixScript -Script $undo[0].script -Folder $TestDrive -Name 'undo'
        $u2.result.status | Should -Be 'ok'
    }

    It 'disable with the key present (value 0): the backup is the reg export; the undo puts 0 back exactly; twice is ok' {
        Set-TwinRegistryKey -Path $UdpKey -Values @{ fClientDisableUDP = 0 }
        $before = Get-Registry
        $run = Invoke-RdpfixScript -Script $Scripts.udp -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.before | Should -Be 0
        Get-TwinRegistryValue -Path $UdpKey -Name 'fClientDisableUDP' | Should -Be 1
        # Join-Path writes / off Windows; on Windows this is C:\ProgramData\rdpfix\backup\<time>-disable-rdp-udp-<hex>\disable-rdp-udp.reg,
        # in the run's own folder next to its record.json.
        $run.result.backup | Should -Match '^C:[\\/]ProgramData[\\/]rdpfix[\\/]backup[\\/]\d{8}-\d{6}-\d{3}-disable-rdp-udp-[0-9a-f]{6}[\\/]disable-rdp-udp\.reg$'
        Test-Path -LiteralPath $run.result.backup | Should -BeTrue
        $runFolder = Split-Path -Leaf (Split-Path -Parent $run.result.backup)
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix/backup' | Join-Path -ChildPath $runFolder | Join-Path -ChildPath 'record.json') | Should -BeTrue
        [System.IO.File]::ReadAllText((Resolve-Path -LiteralPath $run.result.backup).ProviderPath, [System.Text.Encoding]::Unicode) | Should -Match '"fClientDisableUDP":\{"type":"DWord","value":0\}'
        @($run.result.restore)[0] | Should -Match "-Name 'fClientDisableUDP' -Type DWord -Value 0$"

        $undo = @(Get-Undo -Step 'disable-rdp-udp' -Raw $run.result)
        $u1 = Invoke-RdpfixScript -Script $undo[0].script -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        Get-Registry | Should -Be $before
        (Invoke-RdpfixScript -Script $undo[0].script -Folder $TestDrive -Name 'undo').result.status | Should -Be 'ok'
        Get-Registry | Should -Be $before
    }

    It 'enable (remove the value): dry run changes nothing; apply removes it and backs the key up; again is ok' {
        Set-TwinRegistryKey -Path $UdpKey -Values @{ fClientDisableUDP = 1 }
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.enableDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change'
        Get-TwinStateJson | Should -Be $before
        Test-Path -LiteralPath 'C:\ProgramData\rdpfix\backup' | Should -BeFalse

        $run = Invoke-RdpfixScript -Script $Scripts.enable -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.after | Should -BeNullOrEmpty
        Get-TwinRegistryValue -Path $UdpKey -Name 'fClientDisableUDP' | Should -BeNullOrEmpty
        Test-Path -LiteralPath $run.result.backup | Should -BeTrue
        $after = Get-TwinStateJson
        (Invoke-RdpfixScript -Script $Scripts.enable -Folder $TestDrive).result.status | Should -Be 'ok'
        Get-TwinStateJson | Should -Be $after

        # Its undo sets the 1 back.
        $undo = @(Get-Undo -Step 'disable-rdp-udp' -Raw $run.result)
        (Invoke-RdpfixScript -Script $undo[0].script -Folder $TestDrive -Name 'undo').result.status | Should -Be 'changed'
        Get-TwinRegistryValue -Path $UdpKey -Name 'fClientDisableUDP' | Should -Be 1
    }

    It 'restore a value (0) over 1: changed to 0, again ok' {
        Set-TwinRegistryKey -Path $UdpKey -Values @{ fClientDisableUDP = 1 }
        $run = Invoke-RdpfixScript -Script $Scripts.restore0 -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        Get-TwinRegistryValue -Path $UdpKey -Name 'fClientDisableUDP' | Should -Be 0
        (Invoke-RdpfixScript -Script $Scripts.restore0 -Folder $TestDrive).result.status | Should -Be 'ok'
    }

    It 'faults: a registry write that throws (key missing and key present), a reg export that fails, a backup that cannot be written: failed, nothing changed' {
        foreach ($case in @('RegistryWriteThrows/missing', 'RegistryWriteThrows/present', 'RegExportFails/present', 'BackupUnwritable/present')) {
            $fault, $key = $case.Split('/')
            Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
            if ($key -eq 'present') { Set-TwinRegistryKey -Path $UdpKey -Values @{ fClientDisableUDP = 0 } }
            if ($fault -eq 'BackupUnwritable') { Set-BackupUnwritable } else { Set-TwinFault -Name $fault }
            $before = Get-Registry
            $run = Invoke-RdpfixScript -Script $Scripts.udp -Folder $TestDrive
            $run.result.status | Should -Be 'failed' -Because $case
            $run.result.error | Should -Not -BeNullOrEmpty -Because $case
            if ($fault -eq 'RegistryWriteThrows') { $run.result.error | Should -Match 'Requested registry access is not allowed' }
            if ($fault -eq 'RegExportFails') { $run.result.error | Should -Match 'reg.exe export failed with exit code 1' }
            Get-Registry | Should -Be $before -Because $case
        }
    }
}

Describe 'lower-mtu on the twin' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $null = New-PSDrive -Name C -PSProvider FileSystem -Root $TestDrive -Scope Global
        Use-WindowsTwin
    }
    AfterEach { Remove-PSDrive -Name C -Scope Global -Force -ErrorAction SilentlyContinue }

    It 'set on Ethernet (index 6, 1500): dry run changes nothing; apply sets 1400 through netsh by index, backs up 1500; again is ok' {
        $before = Get-TwinStateJson
        $dry = Invoke-RdpfixScript -Script $Scripts.mtuDry -Folder $TestDrive
        $dry.result.status | Should -Be 'would-change' -Because $dry.json
        $dry.result.interfaceIndex | Should -Be 6
        $dry.result.before | Should -Be 1500
        Get-TwinStateJson | Should -Be $before
        Test-Path -LiteralPath 'C:\ProgramData\rdpfix' | Should -BeFalse

        $run = Invoke-RdpfixScript -Script $Scripts.mtu -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.after | Should -Be 1400
        $run.result.store | Should -Be 'persistent'
        # Only the IPv4 subinterface changes; IPv6 and the loopback keep theirs.
        (Get-TwinState).mtu | Should -Be @('6/IPv4=1400', '6/IPv6=1500', '1/IPv4=4294967295')
        Get-TwinCalls | Should -Contain 'netsh.exe interface ipv4 set subinterface 6 mtu=1400 store=persistent'
        Test-Path -LiteralPath $run.result.backup | Should -BeTrue
        $saved = Get-Content -LiteralPath $run.result.backup -Raw | ConvertFrom-Json
        $saved.interface | Should -Be 'Ethernet'
        $saved.interfaceIndex | Should -Be 6
        $saved.mtu | Should -Be 1500
        @($run.result.restore)[0] | Should -Be "netsh.exe interface ipv4 set subinterface '6' 'mtu=1500' 'store=persistent'"

        $after = Get-TwinStateJson
        $again = Invoke-RdpfixScript -Script $Scripts.mtu -Folder $TestDrive
        $again.result.status | Should -Be 'ok'
        Get-TwinStateJson | Should -Be $after
    }

    It '--temporary sets store=active' {
        $run = Invoke-RdpfixScript -Script $Scripts.mtuTemp -Folder $TestDrive
        $run.result.status | Should -Be 'changed'
        Get-TwinCalls | Should -Contain 'netsh.exe interface ipv4 set subinterface 6 mtu=1400 store=active'
    }

    It 'the journaled undo (what --revert replays) puts 1500 back exactly; twice is ok' {
        $before = (Get-TwinState).mtu
        $run = Invoke-RdpfixScript -Script $Scripts.mtu -Folder $TestDrive
        $run.result.status | Should -Be 'changed'
        $undo = @(Get-Undo -Step 'lower-mtu' -Raw $run.result -Options @{ interface = 'Ethernet'; mtu = 1400 })
        $undo.Count | Should -Be 1
        $undo[0].kind | Should -Be 'powershell'
        $u1 = Invoke-RdpfixScript -Script $undo[0].script -Folder $TestDrive -Name 'undo'
        $u1.result.status | Should -Be 'changed' -Because $u1.json
        (Get-TwinState).mtu | Should -Be $before
        $u2 = Invoke-RdpfixScript -Script $undo[0].script -Folder $TestDrive -Name 'undo'
        $u2.result.status | Should -Be 'ok'
        (Get-TwinState).mtu | Should -Be $before
    }

    It 'netsh failing: failed with netsh''s words, the MTU unchanged' {
        Set-TwinFault -Name 'NetshFails'
        $before = (Get-TwinState).mtu
        $run = Invoke-RdpfixScript -Script $Scripts.mtu -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -Match 'netsh.exe interface failed with exit code 1: The requested operation requires elevation'
        (Get-TwinState).mtu | Should -Be $before
    }

    It 'a backup that cannot be written: failed before netsh runs, the MTU unchanged' {
        Set-BackupUnwritable
        $before = (Get-TwinState).mtu
        $run = Invoke-RdpfixScript -Script $Scripts.mtu -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -Not -BeNullOrEmpty
        (Get-TwinState).mtu | Should -Be $before
        @(Get-TwinCalls | Where-Object -FilterScript { $_ -like 'netsh*' }).Count | Should -Be 0
    }

    It 'a missing interface: failed, no-such-interface, the available names listed' {
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.mtuMissing -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.reason | Should -Be 'no-such-interface'
        $run.result.error | Should -Be "interface 'WLAN 7' does not exist"
        @($run.result.available) | Should -Be @('Ethernet', 'Loopback Pseudo-Interface 1')
        Get-TwinStateJson | Should -Be $before
    }

    It 'an alias with non-ASCII characters travels as base64 and is matched exactly (not its ASCII look-alike)' {
        Set-TwinValue -Name 'interfaces' -Value @(
            [pscustomobject]@{ InterfaceAlias = 'Ethernet'; InterfaceIndex = 6; AddressFamily = 'IPv4'; NlMtu = 1500 },
            [pscustomobject]@{ InterfaceAlias = 'Conexion de area local'; InterfaceIndex = 11; AddressFamily = 'IPv4'; NlMtu = 1500 },
            [pscustomobject]@{ InterfaceAlias = $Unicode; InterfaceIndex = 12; AddressFamily = 'IPv4'; NlMtu = 1500 })
        $Scripts.mtuUnicode | Should -Match 'FromBase64String'
        $Scripts.mtuUnicode | Should -Not -Match '[^\x00-\x7F]'
        $run = Invoke-RdpfixScript -Script $Scripts.mtuUnicode -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $run.result.interface | Should -Be $Unicode
        $run.result.interfaceIndex | Should -Be 12
        (Get-TwinState).mtu | Should -Be @('6/IPv4=1500', '11/IPv4=1500', '12/IPv4=1380')
        (Get-Content -LiteralPath $run.result.backup -Raw -Encoding UTF8 | ConvertFrom-Json).interface | Should -Be $Unicode
    }
}

Describe 'the route lookup (test-vpn-latency) on the twin' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
    }

    It 'is read-only and answers the route, the interface MTU and the adapter description' {
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Scripts.route -Folder $TestDrive
        $run.result.status | Should -Be 'ok' -Because $run.json
        $run.result.step | Should -Be 'route-lookup'
        $run.result.mtu | Should -Be 1500
        $run.result.description | Should -Be 'Intel(R) Ethernet Connection I219-LM'
        @($run.result.routes).Count | Should -Be 1
        $r = @($run.result.routes)[0]
        $r.InterfaceAlias | Should -Be 'Ethernet'
        $r.InterfaceIndex | Should -Be 6
        $r.IPAddress | Should -Be '192.0.2.10'
        $r.NextHop | Should -Be '192.0.2.1'
        @($r.PSObject.Properties.Name) | Should -Be @('InterfaceAlias', 'InterfaceIndex', 'IPAddress', 'NextHop', 'DestinationPrefix')
        Get-TwinStateJson | Should -Be $before
    }
}
