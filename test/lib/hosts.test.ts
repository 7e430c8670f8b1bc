import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../scripts/lib/errors.ts';
import { parseHostsFile } from '../../scripts/lib/hosts.ts';

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

hosts.run();
