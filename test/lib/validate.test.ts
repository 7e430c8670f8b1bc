import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../scripts/lib/errors.ts';
import {
  formatHostPort, validateAzureResourceGroup, validateAzureSubscription, validateAzureVmName, validateDuration,
  validateHost, validateInterface, validateMtu, validatePort, validateThumbprint, validateWindowsPath,
} from '../../scripts/lib/validate.ts';

function rejects(fn: () => unknown, mentions: string) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UsageError);
    assert.is((e as UsageError).exitCode, 2);
    assert.ok((e as Error).message.includes(mentions), `message should name ${mentions}: ${(e as Error).message}`);
    return;
  }
  assert.unreachable(`accepted ${mentions}`);
}

const host = suite('validateHost');

host('accepts DNS names, IPv4 and bracketed IPv6, with optional ports', () => {
  assert.equal(validateHost('vm1.contoso.com'), { host: 'vm1.contoso.com', family: 0 });
  assert.equal(validateHost('10.0.0.4:3390'), { host: '10.0.0.4', family: 4, port: 3390 });
  assert.equal(validateHost('[2001:db8::1]:3389'), { host: '2001:db8::1', family: 6, port: 3389 });
  assert.equal(validateHost('[::1]'), { host: '::1', family: 6 });
});

host('rejects hostile and malformed hosts, naming the value', () => {
  for (const bad of ['', 'a b', 'x;rm -rf /', '$(evil)', "vm'1", '-oProxyCommand=x', '2001:db8::1', '[::1', '1.2.3.256', 'a..b', 'host:0', 'host:99999', 'x'.repeat(64) + '.com']) {
    rejects(() => validateHost(bad), JSON.stringify(bad).slice(0, 20));
  }
});

host('formats IPv6 with brackets and a default port', () => {
  assert.is(formatHostPort({ host: '::1' }), '[::1]:3389');
  assert.is(formatHostPort({ host: 'vm', port: 1 }), 'vm:1');
});

// ---

const nums = suite('port and MTU');

nums('port is 1-65535, digits only', () => {
  assert.is(validatePort('3389'), 3389);
  for (const bad of ['0', '65536', '-1', '3389;', '1e3', ' ', '0x10']) rejects(() => validatePort(bad), 'port');
});

nums('MTU is 576-9000 for IPv4 and at least 1280 for IPv6', () => {
  assert.is(validateMtu(576), 576);
  assert.is(validateMtu('9000'), 9000);
  rejects(() => validateMtu(575), 'MTU');
  rejects(() => validateMtu(9001), 'MTU');
  rejects(() => validateMtu(1000, 6), '1280');
  rejects(() => validateMtu('1400; reboot'), 'MTU');
});

// ---

const names = suite('interface, Azure names, paths, thumbprints, durations');

names('Windows interface aliases may contain spaces and brackets, never quotes or $', () => {
  assert.is(validateInterface('vEthernet (Default Switch)'), 'vEthernet (Default Switch)');
  assert.is(validateInterface('Local Area Connection* 12'), 'Local Area Connection* 12');
  for (const bad of ["Ethernet'; Stop-Computer", 'Wi-Fi$(x)', 'a`b', 'x\ny', ' Ethernet', '']) rejects(() => validateInterface(bad), 'interface');
});

names('Linux interface names follow the kernel rule', () => {
  assert.is(validateInterface('wg0', 'linux'), 'wg0');
  rejects(() => validateInterface('Ethernet 2', 'linux'), 'interface');
  rejects(() => validateInterface('a'.repeat(16), 'linux'), 'interface');
});

names('Azure subscription, resource group and VM names', () => {
  assert.is(validateAzureSubscription('0b1f6471-1bf0-4dda-aec3-cb9272f09590'), '0b1f6471-1bf0-4dda-aec3-cb9272f09590');
  assert.is(validateAzureResourceGroup('rg-prod_(eu).1'), 'rg-prod_(eu).1');
  assert.is(validateAzureVmName('web-01'), 'web-01');
  rejects(() => validateAzureResourceGroup('rg.'), 'resource group');
  rejects(() => validateAzureVmName('_vm'), 'VM name');
  rejects(() => validateAzureVmName('vm;x'), 'VM name');
  rejects(() => validateAzureSubscription('a/b'), 'subscription');
});

names('Windows paths must be absolute and free of special characters', () => {
  assert.is(validateWindowsPath('C:\\ProgramData\\rdpfix\\backup'), 'C:\\ProgramData\\rdpfix\\backup');
  for (const bad of ['relative\\x', 'C:\\a\\..\\Windows', 'C:\\a"b', 'C:\\a|b', 'C:\\a\nb', 'C:\\x:y']) rejects(() => validateWindowsPath(bad), 'path');
});

names('thumbprints are 40 hex digits, normalised to upper case', () => {
  assert.is(validateThumbprint('ab:cd ' + 'ef'.repeat(18)), 'ABCD' + 'EF'.repeat(18));
  rejects(() => validateThumbprint("AB'; Remove-Item Cert:\\ -Recurse"), 'thumbprint');
});

names('durations', () => {
  assert.is(validateDuration('2h'), 7200);
  assert.is(validateDuration('1h30m'), 5400);
  rejects(() => validateDuration('10s'), 'duration');
  rejects(() => validateDuration('2 hours'), 'duration');
});

host.run();
nums.run();
names.run();
