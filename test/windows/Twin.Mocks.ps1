# Twin.Mocks.ps1: dot-source in a test file's BeforeAll, then call Use-WindowsTwin in BeforeEach (or
# in an It). Every function of scripts/ps/windows.ps1, the Windows boundary, is first defined for
# real (so Pester's Mock copies its real parameters) and then mocked to the twin's Invoke-Twin<Name>
# (WindowsTwin.psm1). A Mock is an alias, and an alias wins over the function a generated script
# defines itself (checked in harness.Tests.ps1), so the script's own boundary never runs; the rest of
# the script does. Rename-Item, Remove-Item, Copy-Item and Move-Item run for real and then move, drop or reset
# the twin's ACL entries as NTFS would; Copy-Item, Move-Item, Set-Content, Add-Content and Rename-Item log each
# file they write (Add-TwinWrite). Start-Sleep returns at once (the twin needs no waiting).
$script:RdpfixRoot = (Resolve-Path -LiteralPath (Join-Path -Path $PSScriptRoot -ChildPath '../..')).ProviderPath
Import-Module (Join-Path -Path $PSScriptRoot -ChildPath 'WindowsTwin.psm1') -Force -DisableNameChecking
. (Join-Path -Path $PSScriptRoot -ChildPath 'Emit.ps1')
$script:BoundaryFile = Join-Path -Path $script:RdpfixRoot -ChildPath 'scripts/ps/windows.ps1'
. $script:BoundaryFile
$script:BoundaryFunctions = @([System.Management.Automation.Language.Parser]::ParseFile($script:BoundaryFile, [ref]$null, [ref]$null).FindAll({ param($n) $n -is [System.Management.Automation.Language.FunctionDefinitionAst] }, $false) | ForEach-Object -Process { $_.Name })

function Use-WindowsTwin {
    foreach ($name in $script:BoundaryFunctions) {
        $twin = 'Invoke-Twin' + ($name -replace '-', '')
        if (-not (Get-Command -Name $twin -ErrorAction SilentlyContinue)) { throw ('the twin has no {0} for the boundary function {1}' -f $twin, $name) }
        Mock -CommandName $name -MockWith ([scriptblock]::Create(('{0} @PesterBoundParameters' -f $twin)))
    }
    Mock -CommandName Start-Sleep -MockWith { }
    Mock -CommandName Rename-Item -MockWith {
        # A rename puts a name into its folder: logged like a write (a record written to a temp file, then renamed).
        Add-TwinWrite -Path (Join-Path -Path (Split-Path -Path $LiteralPath -Parent) -ChildPath $NewName)
        & (Get-Command -Name Rename-Item -CommandType Cmdlet) @PesterBoundParameters
        Move-TwinAcl -From $LiteralPath -To (Join-Path -Path (Split-Path -Path $LiteralPath -Parent) -ChildPath $NewName)
    }
    Mock -CommandName Remove-Item -MockWith {
        $paths = @($LiteralPath) + @($Path) | Where-Object -FilterScript { $_ }
        & (Get-Command -Name Remove-Item -CommandType Cmdlet) @PesterBoundParameters
        foreach ($p in $paths) { Clear-TwinAcl -Path $p }
    }
    Mock -CommandName Copy-Item -MockWith {
        $target = $Destination
        if (Test-Path -LiteralPath $Destination -PathType Container) { $target = Join-Path -Path $Destination -ChildPath (Split-Path -Path $LiteralPath -Leaf) }
        Add-TwinWrite -Path $target
        & (Get-Command -Name Copy-Item -CommandType Cmdlet) @PesterBoundParameters
        Clear-TwinAcl -Path $target
    }
    Mock -CommandName Move-Item -MockWith {
        $target = $Destination
        if (Test-Path -LiteralPath $Destination -PathType Container) { $target = Join-Path -Path $Destination -ChildPath (Split-Path -Path $LiteralPath -Leaf) }
        Add-TwinWrite -Path $target
        & (Get-Command -Name Move-Item -CommandType Cmdlet) @PesterBoundParameters
        Clear-TwinAcl -Path $target
        Move-TwinAcl -From $LiteralPath -To $target
    }
    # The files a script writes itself are logged with the DACL of their folder at that moment
    # (Add-TwinWrite), like the twin's reg export, icacls /save and certificate export: the order check.
    Mock -CommandName Set-Content -MockWith {
        foreach ($p in @(@($LiteralPath) + @($Path) | Where-Object -FilterScript { $_ })) { Add-TwinWrite -Path $p }
        & (Get-Command -Name Set-Content -CommandType Cmdlet) @PesterBoundParameters
    }
    Mock -CommandName Add-Content -MockWith {
        foreach ($p in @(@($LiteralPath) + @($Path) | Where-Object -FilterScript { $_ })) { Add-TwinWrite -Path $p }
        & (Get-Command -Name Add-Content -CommandType Cmdlet) @PesterBoundParameters
    }
}

function Invoke-RdpfixScript {
    # Run one generated script in this session (so the mocks apply) and return its output lines and
    # the one JSON result between the markers (exactly one pair, or it throws).
    param([Parameter(Mandatory = $true)][string]$Script, [Parameter(Mandatory = $true)][string]$Folder, [string]$Name = 'step')
    $path = New-RdpfixScriptFile -Script $Script -Folder $Folder -Name ('{0}-{1}' -f $Name, [guid]::NewGuid().ToString('N').Substring(0, 8))
    $lines = @(& $path 2>&1 | ForEach-Object -Process { [string]$_ })
    $begin = @(for ($i = 0; $i -lt $lines.Count; $i++) { if ($lines[$i] -eq '##rdpfix-result-begin##') { $i } })
    $end = @(for ($i = 0; $i -lt $lines.Count; $i++) { if ($lines[$i] -eq '##rdpfix-result-end##') { $i } })
    if ($begin.Count -ne 1 -or $end.Count -ne 1 -or $end[0] -ne $begin[0] + 2) { throw ('expected one JSON line between the markers, got: {0}' -f ($lines -join ' | ')) }
    return [pscustomobject]@{ lines = $lines; json = $lines[$begin[0] + 1]; result = ($lines[$begin[0] + 1] | ConvertFrom-Json) }
}
