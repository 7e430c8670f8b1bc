# route-lookup.ps1: Which interface and MTU carry traffic to one address, on the Windows client (read-only).
# requires: windows

function Get-RdpNetRoute {
    # Find-NetRoute's answer (the source address and the route chosen), the IPv4 or IPv6 MTU of that
    # interface and its adapter's description (which names most VPN clients).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Address)
    $found = @(Find-RdpNetRoute -Address $Address)
    $index = ($found | Select-Object -First 1).InterfaceIndex
    $family = 'IPv4'
    if ($Address -like '*:*') { $family = 'IPv6' }
    $ipInterface = @(Get-RdpNetIPInterface -InterfaceIndex $index -AddressFamily $family) | Select-Object -First 1
    $adapter = Get-RdpNetAdapter -InterfaceIndex $index
    $description = $null
    if ($null -ne $adapter) { $description = $adapter.InterfaceDescription }
    $mtu = $null
    if ($null -ne $ipInterface) { $mtu = [long]$ipInterface.NlMtu }
    $routes = @($found | Select-Object -Property 'InterfaceAlias', 'InterfaceIndex', 'IPAddress', 'NextHop', 'DestinationPrefix')
    return [ordered]@{
        step = 'route-lookup'
        status = 'ok'
        routes = $routes
        mtu = $mtu
        description = $description
    }
}
