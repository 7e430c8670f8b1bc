# The target record (scripts/ps/record.ps1) on the twin: a changing step writes record.json before its
# first change and completes it at the end; a run that dies at any point leaves the twin either unchanged
# and without a record, or with exactly one record from which the changes undo --reconcile journals
# (lib/target-record.ts recordChanges, through test/windows/emit.ts) put the twin back exactly.
# The "kill": the k-th call into the Windows boundary runs `exit` instead, which ends the generated
# script on the spot (no result, no Complete-RdpTargetRecord, no catch), as a killed process would.
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $script:Container = 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'buildNlaScript'; args = @(@{ mode = 'disable' }, $false) },
        @{ build = 'buildRestartScript'; args = @(@{ timeoutSeconds = 2; regenerateCert = $true; removeKey = $true }, $false) },
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2; regenerate = $false; restart = $false }, $false) },
        @{ build = 'buildClearScript'; args = @(@{ timeoutSeconds = 2; renameFolder = $true; force = $true; disconnectSessions = $true }, $false) }
    ))
    foreach ($a in $s) { if ($a.PSObject.Properties['error']) { throw $a.error } }
    $script:Cases = @(
        @{ name = 'toggle-nla disable'; fixture = 'healthy-2019'; script = $s[0].script; parts = @('registry', 'tasks', 'services') },
        @{ name = 'restart-termserv --regenerate-cert --remove-key'; fixture = 'healthy-2019'; script = $s[1].script; parts = @('certificates', 'registry', 'services') },
        @{ name = 'clear-machinekeys ACL repair'; fixture = 'key-unreadable-2019'; script = $s[2].script; parts = @('acl', 'certificates', 'services') },
        @{ name = 'clear-machinekeys --rename-folder'; fixture = 'key-unreadable-2019'; script = $s[3].script; parts = @('certificates', 'services') }
    )

    function Use-KillAt {
        # Count every boundary call; the $At-th one exits the script instead (0: never).
        param([int]$At)
        $global:RdpfixKillAt = $At
        $global:RdpfixCall = 0
        foreach ($name in $script:BoundaryFunctions) {
            $twin = 'Invoke-Twin' + ($name -replace '-', '')
            Mock -CommandName $name -MockWith ([scriptblock]::Create(('$global:RdpfixCall++; if ($global:RdpfixCall -eq $global:RdpfixKillAt) {{ exit 137 }}; {0} @PesterBoundParameters' -f $twin)))
        }
    }
    function Invoke-Killable {
        # Run a generated script; returns its output lines (a killed run has no result markers).
        param([string]$Script)
        $path = New-RdpfixScriptFile -Script $Script -Folder $TestDrive -Name ('k-{0}' -f [guid]::NewGuid().ToString('N').Substring(0, 8))
        return @(& $path 2>&1 | ForEach-Object -Process { [string]$_ })
    }
    function Get-Records {
        $root = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix/backup'
        if (-not (Test-Path -LiteralPath $root)) { return @() }
        return @(Get-ChildItem -LiteralPath $root -Directory | ForEach-Object -Process { Join-Path -Path $_.FullName -ChildPath 'record.json' } | Where-Object -FilterScript { Test-Path -LiteralPath $_ })
    }
    function Get-Part { param([string[]]$Name) $st = Get-TwinState; return (($Name | ForEach-Object -Process { $st[$_] }) | ConvertTo-Json -Depth 8 -Compress) }
    function Get-RecordUndo {
        # The undo scripts recordChanges builds from a record, newest change first. The record's
        # TestDrive paths travel as 'C:\<rest>' (the builders embed only Windows paths) and come back.
        param([string]$File)
        $posix = (Resolve-Path -LiteralPath $TestDrive).ProviderPath.TrimEnd('/')
        $win = 'C:\' + $posix.TrimStart('/')
        $json = (Get-Content -LiteralPath $File -Raw).Replace(('"' + $posix), ('"' + $win.Replace('\', '\\')))
        $a = @(Invoke-RdpfixEmit -Request @(@{ record = ($json | ConvertFrom-Json) }))
        if ($a[0].PSObject.Properties['error']) { throw $a[0].error }
        $changes = @($a[0].changes)
        [array]::Reverse($changes)
        return @($changes | Where-Object -FilterScript { $_.undo.kind -eq 'powershell' } | ForEach-Object -Process { ([string]$_.undo.script).Replace(("'" + $win), ("'" + $posix)) })
    }
}

Describe 'target records on the twin' {
    It 'a complete run leaves one complete record whose changes are the ones the client journals, and its undo restores the twin' {
        foreach ($case in $Cases) {
            Reset-WindowsTwin -Root $TestDrive -Fixture $case.fixture
            Use-WindowsTwin
            $before = Get-Part $case.parts
            $run = Invoke-RdpfixScript -Script $case.script -Folder $TestDrive
            $run.result.status | Should -Be 'changed' -Because ('{0}: {1}' -f $case.name, $run.json)
            $records = @(Get-Records)
            $records.Count | Should -Be 1 -Because $case.name
            $rec = Get-Content -LiteralPath $records[0] -Raw | ConvertFrom-Json
            $rec.phase | Should -Be 'complete'
            $rec.id | Should -Be $run.result.record
            $rec.tag | Should -Be '' -Because 'an untagged (pasted) script'
            foreach ($undo in @(Get-RecordUndo -File $records[0])) {
                $u = Invoke-RdpfixScript -Script $undo -Folder $TestDrive
                $u.result.status | Should -BeIn @('changed', 'ok') -Because ('{0} undo: {1}' -f $case.name, $u.json)
            }
            Get-Part $case.parts | Should -Be $before -Because $case.name
        }
    }

    It 'killed at sampled boundary calls: unchanged without a record, or one record whose undo restores the twin exactly' {
        $stats = [ordered]@{ kills = 0; unchanged = 0; restored = 0 }
        foreach ($case in $Cases) {
            Reset-WindowsTwin -Root $TestDrive -Fixture $case.fixture
            Use-WindowsTwin
            Use-KillAt -At 0
            $null = Invoke-RdpfixScript -Script $case.script -Folder $TestDrive
            $calls = $global:RdpfixCall
            $calls | Should -BeGreaterThan 5
            # Sampled evenly in CI; RDPFIX_KILL_EVERY=1 kills at every call (the soak run the docs report).
            $stride = [math]::Max(1, [math]::Floor($calls / 6))
            if ($env:RDPFIX_KILL_EVERY -eq '1') { $stride = 1 }
            $points = @(1..$calls | Where-Object -FilterScript { $_ % $stride -eq 0 -or $_ -eq $calls })
            foreach ($k in $points) {
                Reset-WindowsTwin -Root $TestDrive -Fixture $case.fixture
                Use-WindowsTwin
                $before = Get-Part $case.parts
                Use-KillAt -At $k
                $lines = Invoke-Killable -Script $case.script
                $lines -contains '##rdpfix-result-begin##' | Should -BeFalse -Because ('{0}: the kill at call {1} of {2} ends the script' -f $case.name, $k, $calls)
                $stats.kills++
                Use-KillAt -At 0
                $records = @(Get-Records)
                $records.Count | Should -BeLessOrEqual 1 -Because ('{0}, kill at {1}: one run, at most one record' -f $case.name, $k)
                if ($records.Count -eq 0) {
                    Get-Part $case.parts | Should -Be $before -Because ('{0}, kill at {1}: no record, so nothing may have changed' -f $case.name, $k)
                    $stats.unchanged++
                    continue
                }
                foreach ($undo in @(Get-RecordUndo -File $records[0])) {
                    $u = Invoke-RdpfixScript -Script $undo -Folder $TestDrive
                    $u.result.status | Should -BeIn @('changed', 'ok') -Because ('{0}, kill at {1}: {2}' -f $case.name, $k, $u.json)
                }
                Get-Part $case.parts | Should -Be $before -Because ('{0}, kill at {1} of {2}: the undo from the record restores the twin' -f $case.name, $k, $calls)
                $stats.restored++
            }
        }
        $line = ('records: {0} kills, {1} unchanged without a record, {2} restored from the record' -f $stats.kills, $stats.unchanged, $stats.restored)
        if ($env:RDPFIX_KILL_REPORT) { Set-Content -LiteralPath $env:RDPFIX_KILL_REPORT -Value $line -Encoding ASCII }
        $stats.restored | Should -BeGreaterThan 0
    }
}
