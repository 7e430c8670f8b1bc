# route-lookup.ps1: Which interface and MTU carry traffic to one address, on the Windows client (read-only).

function Get-RdpNetRoute {
    # Find-NetRoute's answer (the source address and the route chosen), the IPv4 or IPv6 MTU of that
    # interface and its adapter's description (which names most VPN clients).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Address)
    $found = @(Find-NetRoute -RemoteIPAddress $Address -ErrorAction Stop)
    $index = ($found | Select-Object -First 1).InterfaceIndex
    $family = 'IPv4'
    if ($Address -like '*:*') { $family = 'IPv6' }
    $ipInterface = Get-NetIPInterface -InterfaceIndex $index -AddressFamily $family -ErrorAction SilentlyContinue
    $adapter = Get-NetAdapter -InterfaceIndex $index -ErrorAction SilentlyContinue
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
