import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../scripts/lib/errors.ts';
import { endpointKey, parseHostsFile } from '../../scripts/lib/hosts.ts';

const hosts = suite('parseHostsFile');

hosts('HOST[:PORT] [TARGET] per line; comments and blank lines skipped; line numbers kept', () => {
  const t = parseHostsFile('# fleet\n10.0.0.4\nvm1.contoso.com:3390  winrm://vm1   # web\n\n[2001:db8::1]:3389\n', 'hosts.txt');
  assert.equal(t.map((x) => [x.host, x.port, x.target, x.line]), [
    ['10.0.0.4', undefined, undefined, 2],
    ['vm1.contoso.com', 3390, 'winrm://vm1', 3],
    ['2001:db8::1', 3389, undefined, 5],
  ]);
});

hosts('a hostile or malformed line is a usage error naming file and line', () => {
  for (const [bad, line] of [['10.0.0.4;reboot\n', 1], ['ok.example\n$(evil)\n', 2], ['a b c\n', 1]] as const) {
    try {
      parseHostsFile(bad, 'hosts.txt');
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (e) {
      assert.instance(e, UsageError);
      assert.ok((e as Error).message.startsWith(`hosts.txt:${line}:`), (e as Error).message);
    }
  }
  assert.throws(() => parseHostsFile('# only comments\n', 'hosts.txt'), /hosts\.txt: no hosts/);
});

hosts('the same endpoint twice with the same target is used once, with a warning naming both lines', () => {
  const warnings: string[] = [];
  const t = parseHostsFile('vm1.contoso.com\nVM1.contoso.com.:3389\n10.0.0.4 winrm://vm2\n10.0.0.4:3389 WINRM://vm2\nvm1.contoso.com:3390\n[2001:DB8:0::1]\n[2001:db8::1]:3389\n', 'hosts.txt', (m) => warnings.push(m));
  assert.equal(t.map((x) => [x.host, x.port, x.line]), [
    ['vm1.contoso.com', undefined, 1],
    ['10.0.0.4', undefined, 3],
    ['vm1.contoso.com', 3390, 5],
    ['2001:DB8:0::1', undefined, 6],
  ]);
  assert.equal(warnings, [
    'hosts.txt:2: "VM1.contoso.com.:3389" is the same host as hosts.txt:1 (vm1.contoso.com:3389); using it once',
    'hosts.txt:4: "10.0.0.4:3389" is the same host as hosts.txt:3 (10.0.0.4:3389); using it once',
    'hosts.txt:7: "[2001:db8::1]:3389" is the same host as hosts.txt:6 ([2001:db8::1]:3389); using it once',
  ]);
});

hosts('the same endpoint with two different targets is refused, naming both lines', () => {
  try {
    parseHostsFile('# fleet\nvm1 winrm://vm1\nweb\nvm1:3389 ssh://admin@vm1\n', 'hosts.txt', () => {});
    assert.unreachable('accepted one host with two targets');
  } catch (e) {
    assert.instance(e, UsageError);
    assert.is((e as Error).message, 'hosts.txt:4: "vm1:3389" is the same host as hosts.txt:2 ("vm1") with a different target (ssh://admin@vm1 vs winrm://vm1)');
  }
  assert.is(endpointKey({ host: 'VM1.Contoso.COM.', family: 0 }), 'vm1.contoso.com:3389');
});

hosts.run();
