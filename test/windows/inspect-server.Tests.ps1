# inspect-server run for real on the Windows twin loaded from each recorded fixture: the facts it
# returns are the twin's, the evidence file is written (or not, --no-save), the result fits Azure
# Run Command, and the real result fed back to the TypeScript (emit.ts `interpret`) gives the
# finding the fixture is about. Then a pasted recipe stage (run-recipe --emit) on the twin.
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'buildInspectScript'; args = @(@{}) },
        @{ build = 'buildInspectScript'; args = @(@{ save = $false }) },
        @{ build = 'emitRecipe'; args = @('azure-vm-cert', @{ host = '10.0.0.4:3389'; stage = 1 }) }
    ))
    $script:Inspect = $s[0].script
    $script:InspectNoSave = $s[1].script
    $script:Stage1 = $s[2].script
    $script:Fixtures = @('healthy-2019', 'key-unreadable-2019', 'expired-2016', 'service-stopped', 'pinned-missing', 'policy-tls-invalid')
    function Get-Fixture { param([string]$Name) (Get-Content -LiteralPath (Join-Path $PSScriptRoot "../fixtures/inspect-server/$Name.json") -Raw | ConvertFrom-Json).facts }
}

Describe 'inspect-server on the twin' {
    BeforeEach { Use-WindowsTwin }

    It 'on <_>: ok, the facts are the twin''s, the evidence file is written, the result fits Run Command, nothing changes' -ForEach @('healthy-2019', 'key-unreadable-2019', 'expired-2016', 'service-stopped', 'pinned-missing', 'policy-tls-invalid') {
        $fixture = $_
        Reset-WindowsTwin -Root $TestDrive -Fixture $fixture
        $want = Get-Fixture $fixture
        $before = Get-TwinStateJson
        $run = Invoke-RdpfixScript -Script $Inspect -Folder $TestDrive
        $run.result.status | Should -Be 'ok' -Because $run.json
        [System.Text.Encoding]::UTF8.GetByteCount($run.json) | Should -BeLessOrEqual 4096
        $f = $run.result.facts
        $f.build | Should -Be $want.build
        $f.computer | Should -Be $want.computer
        $f.runAs | Should -Be $want.runAs
        # Services: name and status as Windows PowerShell 5.1 writes them (numbers), as the twin holds them.
        foreach ($svc in @($want.services)) {
            $got = @($f.services | Where-Object -FilterScript { $_.Name -eq $svc.Name })
            $got.Count | Should -Be 1 -Because $svc.Name
            [string][System.ServiceProcess.ServiceControllerStatus][int]$got[0].Status | Should -Be (Get-TwinService -Name $svc.Name).Status -Because $svc.Name
            [int]$got[0].Status | Should -Be ([int]$svc.Status) -Because $svc.Name
        }
        $f.certificate.thumbprint | Should -Be $want.certificate.thumbprint
        if ($want.certificate.thumbprint) { @(Get-TwinCertificates | ForEach-Object -Process { $_.Thumbprint }) | Should -Contain $f.certificate.thumbprint }
        $f.machineKeys.sddl | Should -Be (Invoke-TwinGetRdpPathSddl -Path (Get-TwinMachineKeys) -Directory)
        $f.machineKeys.sddl | Should -Be $want.machineKeys.sddl
        # The evidence file: under the twin's ProgramData, holding the same facts.
        $f.evidenceFile | Should -Not -BeNullOrEmpty
        $f.evidenceFile.StartsWith((Join-Path $env:ProgramData 'rdpfix')) | Should -BeTrue -Because $f.evidenceFile
        Test-Path -LiteralPath $f.evidenceFile | Should -BeTrue
        (Get-Content -LiteralPath $f.evidenceFile -Raw | ConvertFrom-Json).facts.build | Should -Be $want.build
        Get-TwinStateJson | Should -Be $before
    }

    It 'with --no-save no evidence file is written' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        $run = Invoke-RdpfixScript -Script $InspectNoSave -Folder $TestDrive
        $run.result.status | Should -Be 'ok'
        $run.result.facts.evidenceFile | Should -BeNullOrEmpty
        Test-Path -LiteralPath (Join-Path $env:ProgramData 'rdpfix') | Should -BeFalse
    }

    It 'the real results, interpreted by scripts/inspect-server.ts: healthy is healthy; key-unreadable names the key; service-stopped is a problem' {
        $raw = [ordered]@{}
        foreach ($fixture in @('healthy-2019', 'key-unreadable-2019', 'service-stopped')) {
            Reset-WindowsTwin -Root $TestDrive -Fixture $fixture
            # The recorded certificates expired since (2025-07-01): the twin's now is today, so they
            # are renewed to valid dates (same thumbprint and key) for the case not about expiry.
            foreach ($c in @(Get-TwinCertificates)) { Add-TwinCertificate -Thumbprint $c.Thumbprint -Subject $c.Subject -Issuer $c.Issuer -KeyName $c.keyName -KeyProvider $c.keyProvider -KeyError $c.keyError }
            $raw[$fixture] = (Invoke-RdpfixScript -Script $Inspect -Folder $TestDrive).result
        }
        $r = @(Invoke-RdpfixEmit -Request @($raw.Keys | ForEach-Object -Process { @{ interpret = 'inspect-server'; raw = $raw[$_] } }))
        $r[0].report.healthy | Should -BeTrue -Because ($r[0].report | ConvertTo-Json -Depth 6)
        $r[0].report.cause | Should -Be 'healthy'

        $key = $r[1].report
        $key.healthy | Should -BeFalse
        $key.cause | Should -Not -Be 'healthy'
        $container = 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c'
        $key.certificate.keyFile | Should -Match ([regex]::Escape($container))
        $key.certificate.networkServiceCanRead | Should -BeFalse
        $problems = @($key.findings | Where-Object -FilterScript { $_.severity -eq 'problem' })
        ($problems | ConvertTo-Json -Depth 6) | Should -Match ([regex]::Escape($container)) -Because 'the finding names the key container NETWORK SERVICE cannot read'

        $r[2].report.healthy | Should -BeFalse
        @($r[2].report.findings | Where-Object -FilterScript { $_.severity -eq 'problem' }).Count | Should -BeGreaterThan 0
    }
}

Describe 'inspect-server reports the in-server handshake check' {
    BeforeEach {
        Use-WindowsTwin
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        # The recorded certificate is valid on this day, so the healthy twin handshakes healthy.
        Set-TwinValue -Name now -Value ([datetime]::Parse('2025-06-01T12:00:00Z', [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal))
    }

    It 'healthy on a healthy server; listener-hung, a problem fixed by the restart, when the listener accepts and never answers' {
        $ok = Invoke-RdpfixScript -Script $Inspect -Folder $TestDrive
        $ok.result.facts.handshake.cause | Should -Be 'healthy' -Because $ok.json
        # A listener on every address is checked on loopback.
        Get-TwinCalls | Should -Contain 'Test-RdpHandshake 127.0.0.1:3389'
        Set-TwinFault -Name 'ListenerHung'
        $hung = Invoke-RdpfixScript -Script $Inspect -Folder $TestDrive
        $hung.result.status | Should -Be 'ok'
        $hung.result.facts.handshake.cause | Should -Be 'listener-hung' -Because $hung.json
        # The facts collected before the check are all there: the check is last and bounded.
        $hung.result.facts.certificate.thumbprint | Should -Not -BeNullOrEmpty
        $r = @(Invoke-RdpfixEmit -Request @(@{ interpret = 'inspect-server'; raw = $hung.result }))
        $r[0].report.cause | Should -Be 'listener-hung'
        $r[0].report.handshake.cause | Should -Be 'listener-hung'
        (@($r[0].report.findings | Where-Object -FilterScript { $_.cause -eq 'listener-hung' })[0]).fix | Should -Match 'restart-termserv'
    }
}

Describe 'a pasted recipe stage on the twin (run-recipe azure-vm-cert --emit --stage 1)' {
    BeforeEach {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
        # The day the fixture was recorded: its certificate is valid then (it ends on 2025-07-01).
        Set-TwinValue -Name now -Value ([datetime]::Parse('2025-06-01T12:00:00Z', [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal))
    }

    It 'runs inspect and the restart, the server checks itself and stops healthy; its last line is the one summary JSON (<= 2,000 bytes) with each step''s status' {
        $path = New-RdpfixScriptFile -Script $Stage1 -Folder $TestDrive -Name 'stage1'
        $lines = @(& $path 2>&1 | ForEach-Object -Process { [string]$_ })
        $last = $lines[-1]
        [System.Text.Encoding]::UTF8.GetByteCount($last) | Should -BeLessOrEqual 2000
        $summary = $last | ConvertFrom-Json
        $summary.rdpfix | Should -Be 'summary'
        $summary.recipe | Should -Be 'azure-vm-cert'
        @($summary.steps | ForEach-Object -Process { $_.id }) | Should -Be @('inspect', 'restart', 'probe-after-restart', 'regenerate', 'probe-after-regenerate', 'machinekeys', 'probe-final')
        @($summary.steps | ForEach-Object -Process { $_.status }) | Should -Be @('ok', 'changed', 'ok', 'not-run', 'not-run', 'not-run', 'not-run') -Because $last
        # The steps' own results are there, one pair of markers each, and the summary appears once.
        @($lines | Where-Object -FilterScript { $_ -eq '##rdpfix-result-begin##' }).Count | Should -Be 2
        @($lines | Where-Object -FilterScript { $_.StartsWith('{"rdpfix":"summary"') }).Count | Should -Be 1
        Get-TwinCalls | Should -Contain 'Restart-RdpWinService TermService'
    }

    It 'a failing restart (on_failure: continue) on a server that is still healthy: the check after it says so and the stage stops' {
        Set-TwinFault -Name 'ServiceWontStop'
        $path = New-RdpfixScriptFile -Script $Stage1 -Folder $TestDrive -Name 'stage1'
        $lines = @(& $path 2>&1 | ForEach-Object -Process { [string]$_ })
        $summary = $lines[-1] | ConvertFrom-Json
        [System.Text.Encoding]::UTF8.GetByteCount($lines[-1]) | Should -BeLessOrEqual 2000
        @($summary.steps | ForEach-Object -Process { $_.status }) | Should -Be @('ok', 'failed', 'ok', 'not-run', 'not-run', 'not-run', 'not-run') -Because $lines[-1]
        $summary.result | Should -Be 'healthy'
        ($summary.steps | Where-Object -FilterScript { $_.id -eq 'restart' }).error | Should -Not -BeNullOrEmpty
    }
}
