# The wrong host: every generated step script (each builder in each of its modes: the examples of
# test/examples/*.ts, through emit.ts) run where it must refuse.
#  - On this Linux pwsh WITHOUT the twin: the script's own Assert-RdpHost runs for real and the
#    script prints exactly one JSON result, failed, 'this script runs on Windows ...', and nothing on
#    the error, warning or information streams.
#  - On the twin as a user without Administrator rights: every changing step (and its dry run, which
#    needs the same rights to read what it would change) fails with 'needs Administrator rights' and
#    the twin is unchanged; inspect-server and the route lookup, which need no elevation, still run.
# Left out: the expiry task's command (toggle-nla expiry-task), which is not a step script: the task
# scheduler runs it as SYSTEM on the server that registered it, so it has no host check and no
# result markers (toggle-nla.Tests.ps1 runs it on the twin).
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $a = @(Invoke-RdpfixEmit -Request @(@{ corpus = 'examples' }))
    $script:All = @($a[0].scripts | Where-Object -FilterScript { $_.label -notmatch ' expiry-task$' })
    $script:ReadOnly = '^test/examples/(inspect-server\.ts|test-vpn-latency\.ts) '

    function Invoke-Raw {
        # Run one script file and keep the streams apart: output lines, and every error, warning
        # and information record.
        param([string]$Script, [string]$Name)
        $path = New-RdpfixScriptFile -Script $Script -Folder $TestDrive -Name ($Name -replace '[^A-Za-z0-9-]', '-')
        $records = @(& $path *>&1)
        return [pscustomobject]@{
            output = @($records | Where-Object -FilterScript { $_ -isnot [System.Management.Automation.ErrorRecord] -and $_ -isnot [System.Management.Automation.WarningRecord] -and $_ -isnot [System.Management.Automation.InformationRecord] -and $_ -isnot [System.Management.Automation.VerboseRecord] -and $_ -isnot [System.Management.Automation.DebugRecord] } | ForEach-Object -Process { [string]$_ })
            other = @($records | Where-Object -FilterScript { $_ -is [System.Management.Automation.ErrorRecord] -or $_ -is [System.Management.Automation.WarningRecord] -or $_ -is [System.Management.Automation.InformationRecord] } | ForEach-Object -Process { '{0}: {1}' -f $_.GetType().Name, $_ })
        }
    }
}

Describe 'every step script on a host that is not Windows (no twin)' {
    It 'the corpus is every builder''s modes: 34 step scripts from 8 example modules' {
        $All.Count | Should -Be 34
        @($All | ForEach-Object -Process { ($_.label -split ' ')[0] } | Sort-Object -Unique).Count | Should -Be 8
        foreach ($s in $All) { $s.script | Should -Match '(?m)^Assert-RdpHost( -Elevated)?$' -Because $s.label }
    }

    It 'each prints exactly one JSON result: failed, this script runs on Windows, nothing else on the error streams' {
        $failures = New-Object System.Collections.Generic.List[string]
        foreach ($s in $All) {
            $r = Invoke-Raw -Script $s.script -Name $s.label
            $begin = @(for ($i = 0; $i -lt $r.output.Count; $i++) { if ($r.output[$i] -eq '##rdpfix-result-begin##') { $i } })
            $end = @(for ($i = 0; $i -lt $r.output.Count; $i++) { if ($r.output[$i] -eq '##rdpfix-result-end##') { $i } })
            if ($begin.Count -ne 1 -or $end.Count -ne 1 -or $end[0] -ne $begin[0] + 2) { $failures.Add(('{0}: not one result: {1}' -f $s.label, ($r.output -join ' | '))); continue }
            $json = $r.output[$begin[0] + 1] | ConvertFrom-Json
            if ($json.status -ne 'failed') { $failures.Add(('{0}: status {1}' -f $s.label, $json.status)) }
            if (-not ([string]$json.error).StartsWith('this script runs on Windows')) { $failures.Add(('{0}: error {1}' -f $s.label, $json.error)) }
            if ($r.other.Count) { $failures.Add(('{0}: other output: {1}' -f $s.label, ($r.other -join ' | '))) }
        }
        $failures | Should -BeNullOrEmpty
    }
}

Describe 'every step script on the twin without Administrator rights' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019' -NotElevated
        Use-WindowsTwin
    }

    It 'changing steps fail with needs Administrator rights and change nothing; inspect-server and the route lookup run' {
        $failures = New-Object System.Collections.Generic.List[string]
        $ran = 0
        foreach ($s in $All) {
            Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019' -NotElevated
            $before = Get-TwinStateJson
            $r = Invoke-RdpfixScript -Script $s.script -Folder $TestDrive -Name ($s.label -replace '[^A-Za-z0-9-]', '-')
            if ($s.label -match $ReadOnly) {
                $ran++
                if ($r.result.status -ne 'ok') { $failures.Add(('{0}: a read-only step did not run: {1}' -f $s.label, $r.json)) }
                if ($s.script -match '(?m)^Assert-RdpHost -Elevated$') { $failures.Add(('{0}: a read-only step asks for elevation' -f $s.label)) }
            } else {
                if ($r.result.status -ne 'failed' -or -not ([string]$r.result.error).Contains('needs Administrator rights')) { $failures.Add(('{0}: {1}' -f $s.label, $r.json)) }
                if (@(Get-TwinCalls).Count) { $failures.Add(('{0}: reached the boundary: {1}' -f $s.label, (@(Get-TwinCalls) -join '; '))) }
            }
            if ((Get-TwinStateJson) -ne $before) { $failures.Add(('{0}: the twin changed' -f $s.label)) }
        }
        $ran | Should -Be 3
        $failures | Should -BeNullOrEmpty
    }
}
