import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAccess, compareContainerAcl, isSddl, MASK, networkServiceCanRead, ownerOf, parseSddl, sameSecurity, SID } from '../../scripts/lib/sddl.ts';
import { expectedContainerAces, SESSIONENV_SID } from '../../scripts/lib/server-ps.ts';

// Recorded descriptors (test/fixtures/inspect-server/get-acl-sddl.txt): label<TAB>SDDL.
const SDDL = Object.fromEntries(
  readFileSync(new URL('../fixtures/inspect-server/get-acl-sddl.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split('\t') as [string, string]),
) as Record<string, string>;

const parse = suite('parseSddl');

parse('reads owner, group, DACL flags and every ACE, with aliases as SIDs and rights as masks', () => {
  const sd = parseSddl(SDDL['machinekeys-default']!);
  assert.is(sd.owner, SID.system);
  assert.is(sd.group, SID.system);
  assert.is(sd.daclFlags, 'PAI');
  assert.equal(
    sd.aces.map((a) => [a.kind, a.sid, a.mask]),
    [
      ['allow', SID.everyone, MASK.folderEveryone],
      ['allow', SID.administrators, MASK.fullControl],
    ],
  );
});

parse('maps generic rights to file rights and keeps service SIDs as written', () => {
  const sd = parseSddl(SDDL['key-everyone-read']!);
  assert.is(sd.aces[1]!.mask, MASK.read, 'GR is FILE_GENERIC_READ on a file');
  assert.is(parseSddl(SDDL['key-2019-healthy']!).aces[2]!.sid, SESSIONENV_SID);
});

parse('refuses malformed text instead of guessing', () => {
  for (const bad of ['', 'garbage', 'O:SYD:(A;;FA;;;SY', 'O:SYD:(A;;ZZ;;;SY)', 'D:(A;;FA)']) {
    assert.throws(() => parseSddl(bad), undefined, bad);
    assert.not.ok(isSddl(bad));
  }
  assert.ok(isSddl(SDDL['key-2019-healthy']));
});

// ---

const access = suite('checkAccess / networkServiceCanRead');

access('a healthy key container is readable by NETWORK SERVICE on every measured build', () => {
  assert.ok(networkServiceCanRead(SDDL['key-2019-healthy']!));
  assert.ok(networkServiceCanRead(SDDL['key-2016-healthy']!));
});

access('a container without NETWORK SERVICE, or with a deny for it, is not', () => {
  assert.not.ok(networkServiceCanRead(SDDL['key-network-service-missing']!));
  assert.not.ok(networkServiceCanRead(SDDL['key-network-service-denied']!), 'a deny wins wherever it sits');
});

access('grants add up across entries (Windows may split one grant in two)', () => {
  assert.ok(networkServiceCanRead(SDDL['key-split-grant']!));
  const c = checkAccess(parseSddl(SDDL['key-split-grant']!), [SID.networkService], MASK.read);
  assert.ok(c.granted && !c.denied);
});

access('a read granted to Everyone reaches NETWORK SERVICE through its token', () => {
  assert.ok(networkServiceCanRead(SDDL['key-everyone-read']!));
});

// ---

const cmp = suite('compareContainerAcl / sameSecurity');

cmp('a container matches its own build and not the other build (the third entry swaps)', () => {
  assert.ok(compareContainerAcl(SDDL['key-2019-healthy']!, expectedContainerAces(17763)).matches);
  assert.ok(compareContainerAcl(SDDL['key-2016-healthy']!, expectedContainerAces(14393)).matches);
  const wrong = compareContainerAcl(SDDL['key-2016-healthy']!, expectedContainerAces(17763));
  assert.not.ok(wrong.matches);
  assert.equal(wrong.aces.filter((a) => a.state !== 'ok').map((a) => a.who), ['NT SERVICE\\SessionEnv']);
  assert.equal(wrong.extra, [SID.administrators]);
});

cmp('owner and denies count: Administrators as owner, or a NETWORK SERVICE deny, is not the default', () => {
  const owner = compareContainerAcl(SDDL['key-owner-admins']!, expectedContainerAces(17763));
  assert.not.ok(owner.matches);
  assert.is(owner.owner, SID.administrators);
  const denied = compareContainerAcl(SDDL['key-network-service-denied']!, expectedContainerAces(17763));
  assert.equal(denied.aces.find((a) => a.sid === SID.networkService)!.state, 'denied');
});

cmp('the MachineKeys folder default is recognised by meaning, not by spelling', () => {
  assert.ok(sameSecurity(SDDL['machinekeys-default']!, 'O:SYG:BAD:PAI(A;;FA;;;BA)(A;;0x12019f;;;S-1-1-0)'));
  assert.not.ok(sameSecurity(SDDL['machinekeys-default']!, SDDL['machinekeys-hardened']!));
  assert.not.ok(sameSecurity(SDDL['machinekeys-default']!, SDDL['machinekeys-everyone-denied']!));
  assert.not.ok(sameSecurity(SDDL['machinekeys-default']!, 'O:SYG:SYD:AI(A;;0x12019f;;;WD)(A;;FA;;;BA)'), 'not protected is different');
  assert.is(ownerOf(SDDL['key-owner-admins']!), SID.administrators);
});

parse.run();
access.run();
cmp.run();
