// Route and MTU lookup: parsers of `ip route get`/`ip link`, macOS `route -n get`/`ifconfig`,
// Windows `Find-NetRoute | ConvertTo-Json` and `netsh interface ipv4 show subinterfaces` on recorded
// samples (test/fixtures/route/, test/fixtures/netsh/), VPN naming, and the Windows lookup's process
// plumbing through a fake powershell.exe. The real Linux lookup runs in the lab
// (test/lab/test-vpn-latency.lab.test.ts).
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  describeRoute,
  isVpnInterface,
  parseFindNetRoute,
  parseIfconfigMtu,
  parseIpLinkMtu,
  parseIpLinkNames,
  parseIpRouteGet,
  parseMacRouteGet,
  parseNetshSubinterfaces,
  windowsRouteScript,
} from '../../scripts/lib/route.ts';
import { extractResult, psUnquote } from '../../scripts/lib/ps.ts';
import { fakeBin } from '../helpers/fakebin.ts';
import { nodesOfType, parseProblems } from '../helpers/powershell.ts';

const fx = (p: string) => readFileSync(new URL(`../fixtures/${p}`, import.meta.url), 'utf8');

const linux = suite('Linux: ip route get / ip link');

linux('names device, gateway and source; no MTU unless the kernel cached one', () => {
  assert.equal(parseIpRouteGet(fx('route/linux-ip-route-get.txt')), { dev: 'c-fb497', gateway: '10.195.8.1', source: '10.195.8.2', mtu: null });
  assert.equal(parseIpRouteGet(fx('route/linux-ip-route-get-pmtu.txt')).mtu, 1400);
  assert.equal(parseIpRouteGet(fx('route/linux-ip-route-get-wireguard.txt')), { dev: 'wg0', gateway: null, source: '10.8.0.2', mtu: null });
});

linux('interface MTU and link names from ip -o link show', () => {
  assert.is(parseIpLinkMtu(fx('route/linux-ip-link-show-dev.txt')), 1500);
  assert.equal(parseIpLinkNames(fx('route/linux-ip-link-show.txt')), ['lo', 'c-fb497', 'wg0']);
  assert.is(parseIpLinkMtu(''), null);
});

linux.run();

// ---

const mac = suite('macOS: route -n get / ifconfig');

mac('interface, gateway and the mtu column of the metrics table', () => {
  assert.equal(parseMacRouteGet(fx('route/macos-route-get-utun.txt')), { interface: 'utun4', gateway: null, mtu: 1400 });
  assert.equal(parseMacRouteGet(fx('route/macos-route-get-default.txt')), { interface: 'en0', gateway: '192.168.1.1', mtu: 1500 });
  assert.is(parseIfconfigMtu(fx('route/macos-ifconfig-utun.txt')), 1400);
});

mac.run();

// ---

const win = suite('Windows: Find-NetRoute, netsh, the generated lookup');

win('Find-NetRoute | ConvertTo-Json: alias and index of the route, source address, next hop', () => {
  assert.equal(parseFindNetRoute(fx('route/windows-find-netroute.json')), {
    interfaceAlias: 'WireGuard Tunnel', interfaceIndex: 23, nextHop: '0.0.0.0', sourceAddress: '10.8.0.2', destinationPrefix: '10.8.0.0/24',
  });
  assert.equal(parseFindNetRoute(fx('route/windows-find-netroute-default.json')), {
    interfaceAlias: 'Wi-Fi', interfaceIndex: 12, nextHop: '192.168.1.1', sourceAddress: '192.168.1.23', destinationPrefix: '0.0.0.0/0',
  });
  // PowerShell unwraps one-element arrays; a UTF-8 BOM from Out-File must not break it either.
  assert.is(parseFindNetRoute('\uFEFF{"InterfaceAlias":"Ethernet","InterfaceIndex":4,"NextHop":"10.0.0.1"}').interfaceAlias, 'Ethernet');
});

win('netsh interface ipv4 show subinterfaces: MTU per interface, names with spaces and *', () => {
  const rows = parseNetshSubinterfaces(fx('netsh/show-subinterfaces.txt'));
  assert.equal(rows.map((r) => [r.interface, r.mtu]), [
    ['Loopback Pseudo-Interface 1', 4294967295],
    ['Ethernet', 1500],
    ['Wi-Fi', 1500],
    ['WireGuard Tunnel', 1420],
    ['Local Area Connection* 12', 1500],
    ['vEthernet (Default Switch)', 1500],
  ]);
  assert.equal(rows[1], { mtu: 1500, mediaSenseState: 1, bytesIn: 3819274911, bytesOut: 213938445, interface: 'Ethernet' });
});

win('the generated lookup parses, is read-only, and carries the address only as a quoted $P value', async () => {
  const s = windowsRouteScript('10.8.0.5');
  assert.equal(await parseProblems(s), []);
  assert.match(s, /Address = '10\.8\.0\.5'/);
  assert.match(s, /^\$Result = Get-RdpNetRoute -Address \$P\.Address$/m);
  assert.match(s, /Find-NetRoute -RemoteIPAddress \$Address /);
  const commands = await nodesOfType(s, 'command_name');
  assert.ok(commands.includes('Find-NetRoute'), commands.join(' '));
  // New-Object builds the principal Assert-RdpHost asks; it changes nothing.
  assert.equal(commands.filter((c) => /^(Set|New|Remove|Add|Clear|Disable|Enable)-/i.test(c) && c !== 'Set-StrictMode' && c !== 'New-Object'), []);
  assert.is(psUnquote("'10.8.0.5'"), '10.8.0.5');
});

win('describeRoute on Windows: runs powershell.exe with -EncodedCommand and reads the result through noise', async () => {
  const fb = fakeBin(['powershell.exe']);
  const restore = fb.install();
  try {
    fb.answer('powershell.exe', fx('route/windows-route-lookup-output.txt'));
    const r = await describeRoute('10.1.2.3', 4, 'win32');
    assert.equal(r, {
      interface: 'Ethernet 3', mtu: 1300, vpn: true, gateway: null, source: '10.212.134.200',
      description: 'Cisco AnyConnect Secure Mobility Client Virtual Miniport Adapter for Windows x64',
    });
    const argv = fb.argv('powershell.exe');
    assert.equal(argv.slice(0, 3), ['-NoProfile', '-NonInteractive', '-EncodedCommand']);
    const script = Buffer.from(argv[3]!, 'base64').toString('utf16le');
    assert.is(script, windowsRouteScript('10.1.2.3'));
    assert.ok(extractResult(fx('route/windows-route-lookup-output.txt')));
  } finally {
    restore();
    fb.remove();
  }
});

win('describeRoute never throws: a failing lookup is an unknown route with the reason', async () => {
  const fb = fakeBin(['powershell.exe']);
  const restore = fb.install();
  try {
    fb.answer('powershell.exe', 'Find-NetRoute : The term is not recognized\r\n', 1);
    const r = await describeRoute('10.1.2.3', 4, 'win32');
    assert.is(r.interface, null);
    assert.is(r.mtu, null);
    assert.ok(r.error && /no rdpfix result/.test(r.error), r.error);
  } finally {
    restore();
    fb.remove();
  }
});

win.run();

// ---

const vpn = suite('isVpnInterface');

vpn('tunnel interface names on Linux and macOS', () => {
  for (const n of ['tun0', 'tap1', 'wg0', 'wg-office', 'ppp0', 'utun4', 'ipsec0', 'gpd0', 'cscotun0', 'tailscale0']) assert.ok(isVpnInterface(n), n);
  for (const n of ['eth0', 'en0', 'wlan0', 'enp3s0', 'c-1a2b3', 'lo', 'docker0', 'br-1234', 'veth12ab', 'bond0']) assert.not.ok(isVpnInterface(n), n);
});

vpn('Windows adapter names and descriptions of VPN clients', () => {
  for (const n of ['WireGuard Tunnel', 'OpenVPN Wintun', 'Cisco AnyConnect', 'PANGP Virtual Ethernet Adapter', 'GlobalProtect', 'Fortinet SSL VPN Virtual Ethernet Adapter', 'TAP-Windows Adapter V9', 'NordLynx']) {
    assert.ok(isVpnInterface(n), n);
  }
  // A generic alias is only recognised through its adapter description.
  assert.not.ok(isVpnInterface('Ethernet 3'));
  assert.ok(isVpnInterface('Ethernet 3', 'Cisco AnyConnect Secure Mobility Client Virtual Miniport Adapter for Windows x64'));
  for (const n of ['Ethernet', 'Wi-Fi', 'vEthernet (Default Switch)', 'Local Area Connection* 12', 'Bluetooth Network Connection']) assert.not.ok(isVpnInterface(n), n);
});

vpn.run();
