import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../scripts/lib/errors.ts';
import {
  formatHostPort, validateAzureResourceGroup, validateAzureSubscription, validateAzureVmName, validateDuration,
  inetAton, invisibleCharacters, validateHost, validateInt, validateInterface, validateMtu, validatePort, validateThumbprint, validateWindowsPath,
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

host('numeric IPv4 forms other than dotted decimal are refused with the dotted form to write instead', () => {
  for (const [typed, dotted] of [['0x7f000001', '127.0.0.1'], ['2130706433', '127.0.0.1'], ['0177.0.0.1', '127.0.0.1'], ['127.1', '127.0.0.1'], ['10.0.0x10.4', '10.0.16.4'], ['010.0.0.4:3389', '8.0.0.4']]) {
    rejects(() => validateHost(typed), `invalid host ${JSON.stringify(typed)}: a numeric IPv4 form`);
    rejects(() => validateHost(typed), `write it in dotted decimal: ${dotted}`);
  }
  assert.is(inetAton('10.0.0.4'), null, 'plain dotted decimal is not such a form');
  assert.is(inetAton('vm1'), null);
  assert.equal(validateHost('123.example.com'), { host: '123.example.com', family: 0 }, 'a numeric label in a DNS name is fine');
  rejects(() => validateHost('99999999999'), 'not a valid IPv4 address');
});

host('an invisible character is named by code point in the error, and shown escaped', () => {
  rejects(() => validateHost('\u200evm1.contoso.com'), '"\\u200evm1.contoso.com" (contains the invisible U+200E LEFT-TO-RIGHT MARK at position 1)');
  rejects(() => validateInterface('Ethernet\u00a02'), 'U+00A0 NO-BREAK SPACE at position 9');
  rejects(() => validatePort('3389\u200b'), 'U+200B ZERO WIDTH SPACE at position 5');
  assert.equal(invisibleCharacters('a b\u202ec\ufeff'), ['U+202E RIGHT-TO-LEFT OVERRIDE at position 4', 'U+FEFF ZERO WIDTH NO-BREAK SPACE (BOM) at position 6']);
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

nums('a found MTU (measured or read from the system) may be anything an interface can have, e.g. loopback 65535/65536', () => {
  assert.is(validateMtu(65535, 4, 'found'), 65535);
  assert.is(validateMtu('65536', 4, 'found'), 65536);
  assert.is(validateMtu(68, 4, 'found'), 68);
  rejects(() => validateMtu(65535), 'from 576 to 9000');
  rejects(() => validateMtu(67, 4, 'found'), 'from 68 to 65536');
  rejects(() => validateMtu(1279, 6, 'found'), 'from 1280 to 65536');
});

nums('validateInt names the text that was typed and why it is wrong', () => {
  rejects(() => validateInt('abc', '--parallel', 1, 64), 'invalid --parallel "abc": not a whole number');
  rejects(() => validateInt('', '--parallel', 1, 64), 'invalid --parallel "": it is empty');
  rejects(() => validateInt('-3', '--parallel', 1, 64), '"-3": negative');
  rejects(() => validateInt('100', '--parallel', 1, 64), '"100": out of range; expected a whole number from 1 to 64');
  rejects(() => validateInt(NaN, '--parallel', 1, 64), 'invalid --parallel that is not a number');
  assert.is(validateInt(' 4 ', '--parallel', 1, 64), 4);
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

names('a thumbprint pasted from certlm.msc (leading U+200E, no-break spaces, BOM) is accepted', () => {
  const hex = '3a5f1c2b'.repeat(5);
  assert.is(validateThumbprint(`\u200e${hex}`), hex.toUpperCase());
  assert.is(validateThumbprint(`\ufeff${hex.match(/../g)!.join('\u00a0')}\u200f`), hex.toUpperCase());
  rejects(() => validateThumbprint(`${hex.slice(0, 38)}\u0007z`), 'U+0007 at position 39');
  rejects(() => validateThumbprint(hex.slice(0, 38)), '38 hexadecimal digits; expected 40');
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
