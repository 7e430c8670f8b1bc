# A pasted recipe (run-recipe azure-vm-cert --emit) run on the Windows twin: between its fixes the
# server checks itself (the in-server handshake check, scripts/ps/handshake.ps1) and the script stops
# as soon as that says healthy, as the runner does with the client probe. Three servers: one a
# restart fixes, one that needs the certificate regenerated, one that needs the MachineKeys repair.
BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'Twin.Mocks.ps1')
    $s = @(Invoke-RdpfixEmit -Request @(
        @{ build = 'emitRecipe'; args = @('azure-vm-cert', @{ host = '10.0.0.4:3389' }) },
        @{ build = 'emitRecipe'; args = @('service-down', @{ host = '10.0.0.4:3389' }) }
    ))
    $script:Composite = $s[0].script
    $script:ServiceDown = $s[1].script
    function Invoke-Composite {
        param([string]$Script = $Composite)
        $path = New-RdpfixScriptFile -Script $Script -Folder $TestDrive -Name 'composite'
        $lines = @(& $path 2>&1 | ForEach-Object -Process { [string]$_ })
        $last = $lines[-1]
        [System.Text.Encoding]::UTF8.GetByteCount($last) | Should -BeLessOrEqual 2000
        return [pscustomobject]@{ lines = $lines; summary = ($last | ConvertFrom-Json); last = $last }
    }
    function Get-StepStatus { param($Summary) return @($Summary.steps | ForEach-Object -Process { '{0}={1}' -f $_.id, $_.status }) }
    # The fixtures' certificates are valid on the day they were recorded (healthy-2019's ends on
    # 2025-07-01): the twin's clock is that day (its default, said here where a test relies on it).
    function Set-TwinRecordedClock { Set-TwinValue -Name now -Value ([datetime]::Parse('2025-06-01T12:00:00Z', [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AdjustToUniversal)) }
    function Get-Count { param([string]$Call) return @(Get-TwinCalls | Where-Object -FilterScript { $_ -eq $Call }).Count }
}

Describe 'a pasted recipe stops as soon as the server says healthy' {
    It 'is one stage with every step; its lines say it checks itself' {
        $Composite | Should -Match 'This stage runs: Inspect services'
        $Composite | Should -Match 'the server checks itself'
    }

    It 'a listener that a restart brings back: exactly one restart, no certificate regenerated, then it stops' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
        Set-TwinRecordedClock
        Set-TwinFault -Name 'ListenerHung' -Value 'until-restart'
        $thumb = @((Get-TwinState).certificates['Remote Desktop'])
        $r = Invoke-Composite
        $r.summary.result | Should -Be 'healthy' -Because $r.last
        Get-StepStatus $r.summary | Should -Be @('inspect=ok', 'restart=changed', 'probe-after-restart=ok', 'regenerate=not-run', 'probe-after-regenerate=not-run', 'machinekeys=not-run', 'probe-final=not-run') -Because $r.last
        ($r.summary.steps | Where-Object -FilterScript { $_.id -eq 'probe-after-restart' }).cause | Should -Be 'healthy'
        Get-Count 'Restart-RdpWinService TermService' | Should -Be 1
        @((Get-TwinState).certificates['Remote Desktop']) | Should -Be $thumb
        @(Get-TwinCalls | Where-Object -FilterScript { $_ -like 'Remove-RdpStoreCertificate*' }).Count | Should -Be 0
        $r.summary.next | Should -Match 'check the path from your network'
    }

    It 'an expired self-signed certificate: the restart does not help, the regeneration does, and it stops before the MachineKeys repair' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'expired-2016'
        Use-WindowsTwin
        $thumb = @((Get-TwinState).certificates['Remote Desktop'])
        $r = Invoke-Composite
        $r.summary.result | Should -Be 'healthy' -Because $r.last
        Get-StepStatus $r.summary | Should -Be @('inspect=ok', 'restart=failed', 'probe-after-restart=ok', 'regenerate=changed', 'probe-after-regenerate=ok', 'machinekeys=not-run', 'probe-final=not-run') -Because $r.last
        # The restart is failed, not changed: its own handshake check found the certificate expired,
        # and on_failure: continue lets the check and the next fix run.
        ($r.summary.steps | Where-Object -FilterScript { $_.id -eq 'probe-after-restart' }).cause | Should -Be 'certificate-expired'
        ($r.summary.steps | Where-Object -FilterScript { $_.id -eq 'probe-after-regenerate' }).cause | Should -Be 'healthy'
        @((Get-TwinState).certificates['Remote Desktop']) | Should -Not -Be $thumb
    }

    It 'an RDP key NETWORK SERVICE cannot read: restart, regeneration and the MachineKeys repair all run, and the last check says healthy' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'key-unreadable-2019'
        Use-WindowsTwin
        Set-TwinRecordedClock
        $r = Invoke-Composite
        $r.summary.result | Should -Be 'completed' -Because $r.last
        @($r.summary.steps | ForEach-Object -Process { $_.id }) | Should -Be @('inspect', 'restart', 'probe-after-restart', 'regenerate', 'probe-after-regenerate', 'machinekeys', 'probe-final')
        ($r.summary.steps | Where-Object -FilterScript { $_.id -eq 'probe-after-restart' }).cause | Should -Be 'certificate-key-unusable' -Because $r.last
        ($r.summary.steps | Where-Object -FilterScript { $_.id -eq 'machinekeys' }).status | Should -Be 'changed' -Because $r.last
        ($r.summary.steps | Where-Object -FilterScript { $_.id -eq 'probe-final' }).cause | Should -Be 'healthy' -Because $r.last
    }

    It 'a restart that fails on a server that is still healthy: the check after it says so and nothing else runs' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
        Set-TwinRecordedClock
        Set-TwinFault -Name 'ServiceWontStop'
        $r = Invoke-Composite
        $r.summary.result | Should -Be 'healthy' -Because $r.last
        Get-StepStatus $r.summary | Should -Be @('inspect=ok', 'restart=failed', 'probe-after-restart=ok', 'regenerate=not-run', 'probe-after-regenerate=not-run', 'machinekeys=not-run', 'probe-final=not-run') -Because $r.last
    }

    It 'a restart refused because someone is signed in stops the script although it may continue on failure: the admin decides' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
        Set-TwinFault -Name 'ListenerHung' -Value 'until-restart'
        Set-TwinValue -Name 'sessions' -Value @([pscustomobject]@{ Id = 2; User = 'WEB-01\alice'; State = 'Active'; Client = 'LAPTOP-7'; Station = 'RDP-Tcp#2' })
        $r = Invoke-Composite
        $r.summary.result | Should -Be 'failed' -Because $r.last
        Get-StepStatus $r.summary | Should -Be @('inspect=ok', 'restart=failed', 'probe-after-restart=not-run', 'regenerate=not-run', 'probe-after-regenerate=not-run', 'machinekeys=not-run', 'probe-final=not-run') -Because $r.last
        Get-Count 'Restart-RdpWinService TermService' | Should -Be 0
    }

    It 'a fix that fails without on_failure: continue stops the script (service-down: TermService will not start)' {
        Reset-WindowsTwin -Root $TestDrive -Fixture 'healthy-2019'
        Use-WindowsTwin
        Set-TwinFault -Name 'ServiceWontStart'
        $r = Invoke-Composite -Script $ServiceDown
        $r.summary.result | Should -Be 'failed' -Because $r.last
        Get-StepStatus $r.summary | Should -Be @('inspect=ok', 'restart=failed', 'probe=not-run') -Because $r.last
    }
}
