# Backups that cannot leak (issue 12 part 1), run for real against the Windows twin, whose ProgramData
# has the ACL Windows ships (BUILTIN\Users read & execute, inherited by whatever is created under it
# without a descriptor of its own). The step scripts are the real generated text (test/windows/emit.ts);
# the backup functions are also dot-sourced from scripts/ps for the cases no step reaches yet.
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    foreach ($f in @('result', 'sddl', 'backup')) { . (Join-Path -Path $script:RdpfixRoot -ChildPath ('scripts/ps/{0}.ps1' -f $f)) }
    $script:OldThumb = '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41'
    $script:Container = 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
    $script:ProtectedFolder = 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
    $script:ProtectedFile = 'O:BAG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)'
    $script:InheritedFile = 'O:BAG:SYD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)'
    $script:Stranger = 'S-1-5-21-1004336348-1177238915-682003330-1001'
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = 2; regenerateCert = $true }, $false) },
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2 }, $false) },
        @{ build = 'buildPruneScript'; args = @(@{ olderThanDays = 30 }, $true) },
        @{ build = 'buildPruneScript'; args = @(@{ olderThanDays = 30 }, $false) }
    ))
    $script:Scripts = @{ regen = $s[0].script; repair = $s[1].script; pruneDry = $s[2].script; prune = $s[3].script }

    function Get-Sddl { param([string]$Path) return (Invoke-TwinGetRdpPathSddl -Path $Path) }
    function Get-Wider {
        # The SIDs other than SYSTEM and Administrators a descriptor allows anything to.
        param([string]$Sddl)
        return @((ConvertFrom-TwinSddl -Sddl $Sddl).aces | Where-Object -FilterScript { $_.type -eq 'A' -and @('S-1-5-18', 'S-1-5-32-544') -notcontains $_.sid } | ForEach-Object -Process { $_.sid })
    }
    function Get-BackupRoot { return (Join-Path -Path $env:ProgramData -ChildPath 'rdpfix/backup') }
    function Get-BackupTree {
        # Every folder and file under ProgramData\rdpfix, relative, with its descriptor as the twin answers it.
        $top = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix'
        $out = [ordered]@{}
        if (-not (Test-Path -LiteralPath $top)) { return $out }
        foreach ($item in @(@(Get-Item -LiteralPath $top) + @(Get-ChildItem -LiteralPath $top -Recurse -Force) | Sort-Object -Property FullName)) {
            $out[$item.FullName.Substring($env:ProgramData.Length)] = Get-Sddl $item.FullName
        }
        return $out
    }
    function Get-BackupWrite {
        # The twin's log of files written under the backup root: path and the folder's DACL at that moment.
        $root = Get-BackupRoot
        return @(Get-TwinCalls | ForEach-Object -Process {
            $m = [regex]::Match($_, '^write (?<path>.+) into (?<sddl>.+)$')
            if ($m.Success -and $m.Groups['path'].Value.StartsWith($root)) { [pscustomobject]@{ path = $m.Groups['path'].Value; sddl = $m.Groups['sddl'].Value } }
        })
    }
    function Assert-WrittenIntoProtected {
        # The order check: every file under the backup root was written while its folder already had the
        # protected DACL, and the log is complete (every file there has its write).
        $writes = @(Get-BackupWrite)
        $writes.Count | Should -BeGreaterThan 0
        foreach ($w in $writes) { $w.sddl | Should -Be $ProtectedFolder -Because ('{0} was written into a folder with {1}' -f $w.path, $w.sddl) }
        $written = @($writes | ForEach-Object -Process { $_.path })
        foreach ($file in @(Get-ChildItem -LiteralPath (Get-BackupRoot) -Recurse -Force -File)) { $written | Should -Contain $file.FullName }
    }
    function New-OldBackup {
        # A backup folder as an older rdpfix left it: made with New-Item (so it inherits), with files of known sizes.
        param([Parameter(Mandatory = $true)][string]$Name, [int[]]$Sizes = @(100))
        $path = Join-Path -Path (Get-BackupRoot) -ChildPath $Name
        $null = New-Item -ItemType Directory -Path $path -Force
        $i = 0
        foreach ($n in $Sizes) { [System.IO.File]::WriteAllBytes((Join-Path -Path $path -ChildPath ('file{0}.bin' -f $i)), [byte[]]::new($n)); $i++ }
        return $path
    }
    function Get-Stamp { param([double]$DaysAgo) return (Get-Date).AddDays(-$DaysAgo).ToString('yyyyMMdd-HHmmss-fff') }
}

Describe 'backups on the twin: who can read them' {
    BeforeEach {
        Use-WindowsTwin
    }

    It 'the twin models ProgramData inheritance: a folder made with New-Item under it grants BUILTIN\Users read, a file in it too' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $path = New-OldBackup -Name 'plain'
        # What the old New-RdpBackupFolder produced: Users read & execute (0x1200a9) on the folder and every file in it.
        Get-Sddl $path | Should -Be 'O:BAG:SYD:AI(A;ID;FA;;;BA)(A;OICIIOID;0x10000000;;;CO)(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)(A;CIID;0x116;;;BU)'
        Get-Sddl (Join-Path $path 'file0.bin') | Should -Be 'O:BAG:SYD:AI(A;ID;FA;;;BA)(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)'
        # A protected folder stops it.
        $p = Join-Path $env:ProgramData 'protected'
        Invoke-TwinNewRdpProtectedDirectory -Path $p
        [System.IO.File]::WriteAllBytes((Join-Path $p 'f'), [byte[]](1, 2))
        Get-Sddl $p | Should -Be $ProtectedFolder
        Get-Sddl (Join-Path $p 'f') | Should -Be $InheritedFile
    }

    It 'restart-termserv --regenerate-cert: root, rdpfix, the backup folder and every file in it (key copy, reg export, certificate) readable only by SYSTEM and Administrators; each written after its folder was protected' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $keySddl = Get-Sddl (Join-Path (Get-TwinMachineKeys) $Container)
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $folder = [string]$run.result.backup
        Split-Path -Path $folder -Leaf | Should -Match '^\d{8}-\d{6}-\d{3}-restart-termserv-[0-9a-f]{6}$'
        Get-Sddl (Join-Path $env:ProgramData 'rdpfix') | Should -Be $ProtectedFolder
        Get-Sddl (Get-BackupRoot) | Should -Be $ProtectedFolder
        Get-Sddl $folder | Should -Be $ProtectedFolder
        $files = @(Get-ChildItem -LiteralPath $folder -Force -File | ForEach-Object -Process { $_.Name } | Sort-Object)
        $files | Should -Contain $Container
        $files | Should -Contain ($OldThumb + '.reg')
        $files | Should -Contain ($OldThumb + '.cer')
        # The original key grants NETWORK SERVICE and SessionEnv; its copy does not.
        @(Get-Wider $keySddl).Count | Should -BeGreaterThan 0
        Get-Sddl (Join-Path $folder $Container) | Should -Be $ProtectedFile
        foreach ($f in $files) { @(Get-Wider (Get-Sddl (Join-Path $folder $f))) | Should -BeNullOrEmpty -Because $f }
        Get-Sddl (Join-Path $folder ($OldThumb + '.reg')) | Should -Be $InheritedFile
        Assert-WrittenIntoProtected
        # The calls that made the folders came before any write into them.
        $calls = @(Get-TwinCalls)
        $made = [array]::IndexOf($calls, ('New-RdpProtectedDirectory {0}' -f $folder))
        $made | Should -BeGreaterOrEqual 0
        $firstWrite = @(for ($i = 0; $i -lt $calls.Count; $i++) { if ($calls[$i].StartsWith('write ' + $folder)) { $i } })[0]
        $made | Should -BeLessThan $firstWrite
    }

    It 'clear-machinekeys repair: icacls /save, the container copy and the SDDL notes readable only by SYSTEM and Administrators; each written after its folder was protected' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'key-unreadable-2019'
        $run = Invoke-RdpfixScript -Script $Scripts.repair -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        $folder = [string]$run.result.backup
        Split-Path -Path $folder -Leaf | Should -Match '^\d{8}-\d{6}-\d{3}-clear-machinekeys-[0-9a-f]{6}$'
        Get-Sddl $folder | Should -Be $ProtectedFolder
        $files = @(Get-ChildItem -LiteralPath $folder -Force -File | ForEach-Object -Process { $_.Name } | Sort-Object)
        $files | Should -Contain 'MachineKeys.acl'
        $files | Should -Contain $Container
        $files | Should -Contain ($Container + '.sddl.txt')
        Get-Sddl (Join-Path $folder $Container) | Should -Be $ProtectedFile
        Get-Sddl (Join-Path $folder 'MachineKeys.acl') | Should -Be $InheritedFile
        # Every folder under the root (the repair may regenerate the certificate, a second backup) and every file.
        foreach ($d in @(Get-ChildItem -LiteralPath (Get-BackupRoot) -Force -Directory)) { Get-Sddl $d.FullName | Should -Be $ProtectedFolder }
        foreach ($f in @(Get-ChildItem -LiteralPath (Get-BackupRoot) -Recurse -Force -File)) { @(Get-Wider (Get-Sddl $f.FullName)) | Should -BeNullOrEmpty -Because $f.FullName }
        Assert-WrittenIntoProtected
    }

    It 'two backup folders made in the same millisecond are two folders' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Mock -CommandName Get-Date -MockWith { [datetime]'2026-01-02T03:04:05.678' }
        $a = New-RdpBackupFolder -Step 'toggle-nla'
        $b = New-RdpBackupFolder -Step 'toggle-nla'
        $a | Should -Not -Be $b
        Split-Path $a -Leaf | Should -Match '^20260102-030405-678-toggle-nla-[0-9a-f]{6}$'
        Test-Path -LiteralPath $a -PathType Container | Should -BeTrue
        Test-Path -LiteralPath $b -PathType Container | Should -BeTrue
    }

    It 'a root an older rdpfix left (Users read, inherited) is tightened, says what it was, and its old backups are closed with it' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $old = New-OldBackup -Name ('{0}-restart-termserv' -f (Get-Stamp 3))
        $rootWas = Get-Sddl (Get-BackupRoot)
        $parentWas = Get-Sddl (Join-Path $env:ProgramData 'rdpfix')
        @(Get-Wider $rootWas) | Should -Contain 'S-1-5-32-545'
        @(Get-Wider (Get-Sddl (Join-Path $old 'file0.bin'))) | Should -Contain 'S-1-5-32-545'
        $r = Initialize-RdpBackupRoot
        $r.path | Should -Be (Join-Path $env:ProgramData 'rdpfix\backup')
        $r.created | Should -BeFalse
        $r.tightened | Should -Be ('was: {0}; {1} was: {2}' -f $rootWas, (Join-Path $env:ProgramData 'rdpfix'), $parentWas)
        Get-Sddl (Get-BackupRoot) | Should -Be 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
        Get-Sddl (Join-Path $env:ProgramData 'rdpfix') | Should -Be $ProtectedFolder
        # The old backup inherits from the root, so it is closed too.
        @(Get-Wider (Get-Sddl $old)) | Should -BeNullOrEmpty
        @(Get-Wider (Get-Sddl (Join-Path $old 'file0.bin'))) | Should -BeNullOrEmpty
        # Once tight, nothing to say.
        (Initialize-RdpBackupRoot).tightened | Should -BeNullOrEmpty
        # And a real step run over such a root writes tight backups.
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $null = New-OldBackup -Name 'left-behind'
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        Get-Sddl (Get-BackupRoot) | Should -Be 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
        Get-Sddl (Join-Path ([string]$run.result.backup) $Container) | Should -Be $ProtectedFile
    }

    It 'a custom root whose parents do not exist: each level is created protected' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $root = Join-Path $env:ProgramData 'Corp/rdpfix-backups'
        $r = Initialize-RdpBackupRoot -Root $root
        $r.created | Should -BeTrue
        $r.tightened | Should -BeNullOrEmpty
        Get-Sddl (Join-Path $env:ProgramData 'Corp') | Should -Be $ProtectedFolder
        Get-Sddl $root | Should -Be $ProtectedFolder
        # -WhatIf creates nothing.
        $other = Join-Path $env:ProgramData 'Other/backups'
        $w = Initialize-RdpBackupRoot -Root $other -WhatIf
        $w.created | Should -BeFalse
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'Other') | Should -BeFalse
    }

    It 'a root owned by another user is refused, naming the path and the owner, and nothing changes (the step fails before its change)' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $root = Get-BackupRoot
        $null = New-Item -ItemType Directory -Path $root -Force
        # Anyone may create folders in ProgramData: this one a user made, to read what lands in it.
        Set-TwinPathSddl -Path $root -Sddl ('O:{0}G:SYD:AI(A;OICIID;FA;;;{0})(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)' -f $Stranger)
        $before = Get-TwinStateJson
        $treeBefore = Get-BackupTree | ConvertTo-Json -Compress
        { Initialize-RdpBackupRoot } | Should -Throw -ExpectedMessage ('*{0}*owned by {1}*nothing was changed*' -f $root.Replace('/', '?'), $Stranger)
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -BeLike ('*owned by {0}*' -f $Stranger)
        Get-TwinStateJson | Should -Be $before
        Get-BackupTree | ConvertTo-Json -Compress | Should -Be $treeBefore
        @(Get-TwinCertificates -Store 'Remote Desktop').Thumbprint | Should -Be @($OldThumb)
        @(Get-ChildItem -LiteralPath $root -Force).Count | Should -Be 0
    }

    It 'a root that is a reparse point (a symbolic link elsewhere) is refused and nothing is written through it' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $elsewhere = Join-Path $TestDrive 'elsewhere'
        $null = New-Item -ItemType Directory -Path $elsewhere -Force
        $null = New-Item -ItemType Directory -Path (Join-Path $env:ProgramData 'rdpfix') -Force
        $null = New-Item -ItemType SymbolicLink -Path (Get-BackupRoot) -Target $elsewhere
        { Initialize-RdpBackupRoot } | Should -Throw -ExpectedMessage '*reparse point*nothing was changed*'
        $run = Invoke-RdpfixScript -Script $Scripts.regen -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -BeLike '*reparse point*'
        @(Get-ChildItem -LiteralPath $elsewhere -Force).Count | Should -Be 0
        @(Get-TwinCertificates -Store 'Remote Desktop').Thumbprint | Should -Be @($OldThumb)
    }

    It 'Assert-RdpBackupFile fails on a backup file another SID may read, naming the file and the SID; Copy-RdpBackupFile tightens a copy, Copy-RdpFile (putting a key back) does not' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $folder = New-RdpBackupFolder -Step 'test'
        $file = Join-Path $folder 'x.reg'
        [System.IO.File]::WriteAllBytes($file, [byte[]](1, 2, 3))
        { Assert-RdpBackupFile -Path @($file) } | Should -Not -Throw
        Set-TwinPathSddl -Path $file -Sddl 'O:BAG:SYD:AI(A;;0x1200a9;;;BU)(A;ID;FA;;;SY)(A;ID;FA;;;BA)'
        { Assert-RdpBackupFile -Path @($file) } | Should -Throw -ExpectedMessage ('*{0}*S-1-5-32-545*nothing was changed*' -f $file.Replace('/', '?'))
        { Assert-RdpBackupFile -Path @($file) -SkipAclCheck } | Should -Not -Throw
        $key = Join-Path (Get-TwinMachineKeys) $Container
        Copy-RdpBackupFile -Source $key -Folder $folder
        Get-Sddl (Join-Path $folder $Container) | Should -Be $ProtectedFile
        # The way back into MachineKeys: the copy takes what MachineKeys passes down, the restore then sets the key's own ACL.
        $back = Join-Path $TestDrive 'ProgramData/Microsoft/Crypto/Keys'
        Copy-RdpFile -Source (Join-Path $folder $Container) -Destination $back
        Get-Sddl (Join-Path $back $Container) | Should -Not -Be $ProtectedFile
    }
}

Describe 'backups on the twin: retention (prune-backups)' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
        $null = Initialize-RdpBackupRoot
        $script:Old = New-OldBackup -Name ('{0}-restart-termserv-a1b2c3' -f (Get-Stamp 40)) -Sizes @(1000, 24)
        $script:Older = New-OldBackup -Name ('{0}-toggle-nla' -f (Get-Stamp 400)) -Sizes @(7)
        [System.IO.File]::WriteAllText((Join-Path $Older 'record.json'), '{}')
        $script:Recent = New-OldBackup -Name ('{0}-clear-machinekeys-d4e5f6' -f (Get-Stamp 10)) -Sizes @(5)
        # An old folder holding a link to something outside the root: never followed, never removed.
        $script:Outside = Join-Path $TestDrive 'outside'
        $null = New-Item -ItemType Directory -Path $Outside -Force
        [System.IO.File]::WriteAllBytes((Join-Path $Outside 'precious.bin'), [byte[]]::new(50))
        $script:Linked = New-OldBackup -Name ('{0}-restart-termserv-0f0f0f' -f (Get-Stamp 90)) -Sizes @(3)
        $null = New-Item -ItemType SymbolicLink -Path (Join-Path $Linked 'link') -Target $Outside
        # A folder without a time in its name is dated by the file system (made now: kept).
        $script:Unnamed = New-OldBackup -Name 'hand-made' -Sizes @(9)
    }

    It 'Get-RdpBackupInventory lists every folder with its age, size, file count and record' {
        $inv = @(Get-RdpBackupInventory)
        $inv.Count | Should -Be 5
        $o = $inv | Where-Object -FilterScript { $_.path -eq $Old }
        $o.bytes | Should -Be 1024
        $o.files | Should -Be 2
        $o.record | Should -BeFalse
        $o.createdFrom | Should -Be 'name'
        [math]::Round($o.ageDays) | Should -Be 40
        ($inv | Where-Object -FilterScript { $_.path -eq $Older }).record | Should -BeTrue
        ($inv | Where-Object -FilterScript { $_.path -eq $Linked }).reparsePoints | Should -Be 1
        ($inv | Where-Object -FilterScript { $_.path -eq $Unnamed }).createdFrom | Should -Be 'filesystem'
    }

    It 'dry run (-WhatIf) lists what it would remove with sizes and removes nothing' {
        $tree = Get-BackupTree | ConvertTo-Json -Compress
        $run = Invoke-RdpfixScript -Script $Scripts.pruneDry -Folder $TestDrive
        $run.result.status | Should -Be 'would-change' -Because $run.json
        @($run.result.wouldRemove | ForEach-Object -Process { $_.path } | Sort-Object) | Should -Be @(@($Old, $Older) | Sort-Object)
        ($run.result.wouldRemove | Where-Object -FilterScript { $_.path -eq $Old }).bytes | Should -Be 1024
        @($run.result.removed).Count | Should -Be 0
        @($run.result.skipped | ForEach-Object -Process { $_.path }) | Should -Be @($Linked)
        $run.result.kept | Should -Be 2
        Get-BackupTree | ConvertTo-Json -Compress | Should -Be $tree
    }

    It 'real run removes only the folders older than N days, never the one holding a link, nothing outside the root; again is ok' {
        $run = Invoke-RdpfixScript -Script $Scripts.prune -Folder $TestDrive
        $run.result.status | Should -Be 'changed' -Because $run.json
        @($run.result.removed | ForEach-Object -Process { $_.path } | Sort-Object) | Should -Be @(@($Old, $Older) | Sort-Object)
        # 1000 + 24 in one, 7 + the 2-byte record.json in the other.
        $run.result.bytesRemoved | Should -Be 1033
        Test-Path -LiteralPath $Old | Should -BeFalse
        Test-Path -LiteralPath $Older | Should -BeFalse
        Test-Path -LiteralPath $Recent | Should -BeTrue
        Test-Path -LiteralPath $Unnamed | Should -BeTrue
        Test-Path -LiteralPath (Join-Path $Linked 'link') | Should -BeTrue
        Test-Path -LiteralPath (Join-Path $Outside 'precious.bin') | Should -BeTrue
        Test-Path -LiteralPath (Get-BackupRoot) -PathType Container | Should -BeTrue
        $again = Invoke-RdpfixScript -Script $Scripts.prune -Folder $TestDrive
        $again.result.status | Should -Be 'ok' -Because $again.json
        @($again.result.skipped | ForEach-Object -Process { $_.path }) | Should -Be @($Linked)
    }

    It 'a root owned by another user is refused: nothing removed' {
        Set-TwinPathSddl -Path (Get-BackupRoot) -Sddl ('O:{0}G:SYD:PAI(A;OICI;FA;;;{0})(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)' -f $Stranger)
        $run = Invoke-RdpfixScript -Script $Scripts.prune -Folder $TestDrive
        $run.result.status | Should -Be 'failed'
        $run.result.error | Should -BeLike ('*owned by {0}*' -f $Stranger)
        Test-Path -LiteralPath $Old | Should -BeTrue
    }
}
