# lower-mtu.ps1: The IPv4 MTU of one interface on the Windows client (where mstsc runs): read it, back it up to a JSON file, set it with netsh, read it back.
# requires: windows, literal, record

function Get-RdpIPInterface {
    # The IPv4 interface with exactly this alias. -InterfaceAlias takes wildcards; comparing with
    # -eq keeps '*' or '[' in a name literal.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Alias)
    Get-RdpNetIPInterface -AddressFamily IPv4 | Where-Object -FilterScript { $_.InterfaceAlias -eq $Alias } | Select-Object -First 1
}

function Set-RdpInterfaceMtu {
    # Set the interface's IPv4 MTU (netsh store=persistent or store=active). Nothing happens when it
    # already has that MTU; under -WhatIf it reports 'would-change'. The range is the one of a
    # value found on a system (MTU_RANGE.found[4] in scripts/lib/validate.ts; a test compares them).
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Interface,
        [Parameter(Mandatory = $true)][ValidateRange(68, 65536)][int]$Mtu,
        [Parameter(Mandatory = $true)][ValidateSet('persistent', 'active')][string]$Store,
        [Parameter(Mandatory = $true)][string]$BackupDir,
        [AllowEmptyString()][string]$RecordTag = ''
    )
    $found = Get-RdpIPInterface -Alias $Interface
    if ($null -eq $found) {
        $names = @(Get-RdpNetIPInterface -AddressFamily IPv4 | Select-Object -ExpandProperty InterfaceAlias -Unique)
        return [ordered]@{
            step = 'lower-mtu'
            status = 'failed'
            reason = 'no-such-interface'
            error = ('interface ''{0}'' does not exist' -f $Interface)
            available = $names
        }
    }
    $old = [long]$found.NlMtu
    $result = [ordered]@{
        step = 'lower-mtu'
        status = 'ok'
        interface = $Interface
        interfaceIndex = [int]$found.InterfaceIndex
        before = $old
        after = $old
        mtu = $Mtu
        store = $Store
        backup = $null
    }
    if ($old -eq $Mtu) {
        return $result
    }
    if ($PSCmdlet.ShouldProcess($Interface, ('Set IPv4 MTU from {0} to {1}' -f $old, $Mtu))) {
        $folder = New-RdpTargetRecord -Root $BackupDir -Step 'lower-mtu' -Tag $RecordTag -Result $result -Options ([ordered]@{ backupDir = $BackupDir; mtu = $Mtu; store = $Store; interface = $Interface })
        $backupFile = Join-Path -Path $folder -ChildPath 'lower-mtu.json'
        $saved = [ordered]@{ interface = $Interface; interfaceIndex = $result.interfaceIndex; mtu = $old; time = (Get-Date).ToString('o') }
        $saved | ConvertTo-Json -Compress | Set-Content -LiteralPath $backupFile -Encoding UTF8
        $result.backup = $backupFile
        Save-RdpTargetRecord -Result $result -Pending @{ after = $Mtu }
        # netsh is given the interface index, which is unambiguous whatever characters the name holds.
        $null = Invoke-RdpNative -FilePath 'netsh.exe' -ArgumentList @('interface', 'ipv4', 'set', 'subinterface', [string]$result.interfaceIndex, ('mtu={0}' -f $Mtu), ('store={0}' -f $Store))
        $after = [long](Get-RdpIPInterface -Alias $Interface).NlMtu
        $result.after = $after
        # A pasted script is not in the client journal: the command that puts the old MTU back.
        $result.restore = @(('netsh.exe interface ipv4 set subinterface {0} {1} {2}' -f (ConvertTo-RdpLiteral -Value ([string]$result.interfaceIndex)), (ConvertTo-RdpLiteral -Value ('mtu={0}' -f $old)), (ConvertTo-RdpLiteral -Value ('store={0}' -f $Store))))
        if ($after -eq $Mtu) {
            $result.status = 'changed'
        } else {
            $result.status = 'failed'
            $result.error = ('the MTU reads {0} after setting {1}' -f $after, $Mtu)
        }
    } else {
        $result.status = 'would-change'
    }
    return $result
}
