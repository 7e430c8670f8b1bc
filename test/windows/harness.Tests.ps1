# The harness itself, on Pester 6.2.0 and pwsh 7.6 (no Windows twin needed): the Pester behaviour the
# per-step test files rely on, and the emit bridge (Emit.ps1 -> emit.ts) that hands them the real
# generated scripts and the undo the journal would record.
#
# What this file found about the project's PowerShell style notes (written from the Pester 6.1.0-rc1
# source, never run), checked here on 6.2.0:
# - "Stub, then mock" holds: Mock of a command that does not exist throws "Could not find Command
#   <name>", so every Windows-only command needs a stub (with the real parameter names) first.
# - "a mock should also win over a function the script defines itself ... (inference)" holds, with a
#   condition: the name must exist when Mock runs (a stub), because Mock looks the command up then.
#   With the stub, the alias Mock sets wins over the function the script defines when it runs, with
#   & $path and with a dot-source alike. Without the stub, Mock fails as above.
# - "Mocks no longer fall through" holds: a call that no -ParameterFilter matches, with no default
#   mock, fails with "No mock for command '<name>' matched the call ... no default mock to fall
#   back to". Add a default Mock (or one that calls the stub) for a command mocked only in part.
# - A -WhatIf:$true call (or an inherited $WhatIfPreference) still reaches a mocked double: the
#   double's body runs. So a -WhatIf test must show the script asked ShouldProcess (and that the
#   twin did not change), not merely that nothing was called, wherever the script calls a double
#   with -WhatIf passed on.
# - A path given to Run.Path that does not exist is dropped silently (no container, no error):
#   run.ps1 checks each file itself.
# - A test whose block's BeforeAll threw is reported Failed with no ErrorRecord of its own; the error
#   is on the block (Result.FailedBlocks) or, for a top-level BeforeAll, on the container: run.ps1
#   reports both as rows.

BeforeAll {
    . "$PSScriptRoot/Emit.ps1"

    # Stubs, as the per-step files write them: real parameter names, a throwing body.
    function Get-RdpfixHarnessValue { param([string]$Name) throw 'stub: Get-RdpfixHarnessValue is mocked in each test' }
    function Set-RdpfixHarnessValue { [CmdletBinding(SupportsShouldProcess = $true)] param([string]$Name, [int]$Value) throw 'stub: Set-RdpfixHarnessValue is mocked in each test' }

    # A script that defines its own Get-RdpfixHarnessValue and calls it (as a scripts/ps file would).
    $sut = Join-Path $TestDrive 'defines-its-own.ps1'
    [System.IO.File]::WriteAllText($sut, "function Get-RdpfixHarnessValue { param([string]`$Name) `"real `$Name`" }`nGet-RdpfixHarnessValue -Name a`n")

    # A script that asks ShouldProcess before calling the double, and one that does not.
    $guarded = Join-Path $TestDrive 'guarded.ps1'
    [System.IO.File]::WriteAllText($guarded, "[CmdletBinding(SupportsShouldProcess = `$true)] param()`nif (`$PSCmdlet.ShouldProcess('x', 'set')) { Set-RdpfixHarnessValue -Name x -Value 1 }`n")
    $unguarded = Join-Path $TestDrive 'unguarded.ps1'
    [System.IO.File]::WriteAllText($unguarded, "[CmdletBinding(SupportsShouldProcess = `$true)] param()`nSet-RdpfixHarnessValue -Name x -Value 1 -WhatIf:`$WhatIfPreference`n")

    # Every script this file needs, in one node call.
    $backup = 'C:\ProgramData\rdpfix\backup\20250101-120000-000-toggle-nla'
    $change = @{ scope = 'local'; name = 'UserAuthentication'; before = 1; after = 0 }
    $answers = @(Invoke-RdpfixEmit -Request @(
            @{ build = 'buildNlaScript'; args = @(@{ mode = 'disable'; forSeconds = 7200 }, $false) },
            @{ undo = 'toggle-nla'; raw = @{ step = 'toggle-nla'; status = 'changed'; mode = 'disable'; changed = @($change); backup = $backup }; options = @{ mode = 'disable'; forSeconds = 7200 } },
            @{ build = 'buildNlaUndoScript'; args = @(@($change), $backup) }
        ))
}

Describe 'Pester as the harness uses it' {
    It 'is Pester 6.2.0' {
        (Get-Module -Name Pester).Version | Should -Be ([version]'6.2.0')
    }

    It 'runs the script''s own function when nothing is mocked (so the next test can fail)' {
        & $sut | Should -Be 'real a'
    }

    It 'a Mock wins over a function that a script run with & $path defines itself' {
        Mock Get-RdpfixHarnessValue { "double $Name" }
        & $sut | Should -Be 'double a'
        Should -Invoke Get-RdpfixHarnessValue -Times 1 -Exactly -ParameterFilter { $Name -eq 'a' }
    }

    It 'Should -Invoke counts exactly, and by parameter filter' {
        Mock Get-RdpfixHarnessValue { "double $Name" }
        Get-RdpfixHarnessValue -Name a
        Get-RdpfixHarnessValue -Name b
        Get-RdpfixHarnessValue -Name b
        Should -Invoke Get-RdpfixHarnessValue -Times 3 -Exactly
        Should -Invoke Get-RdpfixHarnessValue -Times 2 -Exactly -ParameterFilter { $Name -eq 'b' }
        { Should -Invoke Get-RdpfixHarnessValue -Times 2 -Exactly -ParameterFilter { $Name -eq 'a' } } | Should -Throw
        Should -Not -Invoke Get-RdpfixHarnessValue -ParameterFilter { $Name -eq 'c' }
    }

    It 'a -WhatIf:$true call reaches a mocked double (its body runs)' {
        Mock Set-RdpfixHarnessValue { 'the double ran' }
        Set-RdpfixHarnessValue -Name x -Value 1 -WhatIf:$true | Should -Be 'the double ran'
        Should -Invoke Set-RdpfixHarnessValue -Times 1 -Exactly -ParameterFilter { $WhatIf -eq $true }
    }

    It 'so under -WhatIf only a ShouldProcess guard keeps the double from being called' {
        Mock Set-RdpfixHarnessValue { 'the double ran' }
        & $unguarded -WhatIf
        Should -Invoke Set-RdpfixHarnessValue -Times 1 -Exactly
        & $guarded -WhatIf
        Should -Invoke Set-RdpfixHarnessValue -Times 1 -Exactly
        & $guarded
        Should -Invoke Set-RdpfixHarnessValue -Times 2 -Exactly
    }

    It 'a Mock of a command that does not exist fails: Windows-only commands need a stub first' {
        { Mock Get-RdpfixHarnessNoSuchCommand { 1 } } | Should -Throw -ExpectedMessage 'Could not find Command Get-RdpfixHarnessNoSuchCommand'
    }

    It 'a call that no -ParameterFilter matches fails when there is no default mock (no fall-through)' {
        Mock Get-RdpfixHarnessValue { 'filtered' } -ParameterFilter { $Name -eq 'a' }
        Get-RdpfixHarnessValue -Name a | Should -Be 'filtered'
        { Get-RdpfixHarnessValue -Name b } | Should -Throw -ExpectedMessage "*No mock for command 'Get-RdpfixHarnessValue' matched the call*"
    }
}

Describe 'the emit bridge' {
    It 'returns the real toggle-nla script, and PowerShell parses it without errors' {
        $text = $answers[0].script
        $text | Should -BeLike '# rdpfix toggle-nla*'
        $text | Should -Match '(?m)^\s+ExpirySeconds = 7200$'
        $tokens = $null; $errors = $null
        [void][System.Management.Automation.Language.Parser]::ParseInput($text, [ref]$tokens, [ref]$errors)
        @($errors).Count | Should -Be 0
        # Saved as a file too (what & $path runs): the same text, byte for byte.
        $file = New-RdpfixScriptFile -Script $text -Folder $TestDrive -Name 'toggle-nla-disable'
        $file | Should -BeLike '*.ps1'
        [System.IO.File]::ReadAllText($file) | Should -BeExactly $text
    }

    It 'returns the undo the real toggle-nla journals: the undo script built from the changed values' {
        $changes = @($answers[1].changes)
        $changes.Count | Should -Be 1
        $changes[0].undo.kind | Should -Be 'powershell'
        $changes[0].undo.target | Should -Be 'local'
        $changes[0].backup | Should -Be $backup
        $changes[0].undo.script | Should -BeLike '# rdpfix toggle-nla-undo*'
        $changes[0].undo.script | Should -BeExactly $answers[2].script
    }

    It 'an unknown builder is an error that names it' {
        { Invoke-RdpfixEmit -Request @(@{ build = 'buildNoSuchScript'; args = @() }) } |
            Should -Throw -ExpectedMessage '*(build buildNoSuchScript): unknown builder "buildNoSuchScript"*'
    }

    It 'New-RdpfixScriptFile refuses a text that is not pure ASCII' {
        { New-RdpfixScriptFile -Script "# caf$([char]0xE9)" -Folder $TestDrive -Name 'not-ascii' } | Should -Throw -ExpectedMessage '*not pure ASCII (U+00E9*'
    }
}
