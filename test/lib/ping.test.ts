// System ping: argv per platform (never a shell string) and parsing of recorded outputs of Linux
// iputils, Windows ping.exe and macOS ping (test/fixtures/ping/README.md says where each is from).
import { readdirSync, readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { icmpOverhead, parsePing, pingArgv, type PingOutcome, type PingPlatform } from '../../scripts/lib/ping.ts';

const fixture = (n: string) => readFileSync(new URL(`../fixtures/ping/${n}`, import.meta.url), 'utf8');

const argv = suite('pingArgv');

argv('Linux: one don\'t-fragment echo with iputils options, payload = MTU - 28', () => {
  const payload = 1400 - icmpOverhead(4);
  assert.equal(pingArgv('linux', { address: '10.8.0.5', family: 4, df: true, payload, timeoutMs: 1000 }),
    ['ping', '-n', '-4', '-c', '1', '-W', '1', '-M', 'do', '-s', '1372', '10.8.0.5']);
  // Whole seconds only (old iputils and busybox reject fractions); runPing's own timer cuts it shorter.
  assert.equal(pingArgv('linux', { address: '10.8.0.5', family: 4, timeoutMs: 300 }).slice(5, 7), ['-W', '1']);
  assert.equal(pingArgv('linux', { address: '2001:db8::5', family: 6, df: true, payload: 1232, timeoutMs: 2500 }),
    ['ping', '-n', '-6', '-c', '1', '-W', '3', '-M', 'do', '-s', '1232', '2001:db8::5']);
});

argv('Windows: -n 1 -w ms -f -l payload; no -f for IPv6', () => {
  assert.equal(pingArgv('win32', { address: '10.8.0.5', family: 4, df: true, payload: 1472, timeoutMs: 1000 }),
    ['ping', '-n', '1', '-w', '1000', '-4', '-f', '-l', '1472', '10.8.0.5']);
  assert.equal(pingArgv('win32', { address: '2001:db8::5', family: 6, df: true, payload: 1452, timeoutMs: 800 }),
    ['ping', '-n', '1', '-w', '800', '-6', '-l', '1452', '2001:db8::5']);
});

argv('macOS: -W in milliseconds and -D for don\'t-fragment; ping6 for IPv6', () => {
  assert.equal(pingArgv('darwin', { address: '10.8.0.5', family: 4, df: true, payload: 1472, timeoutMs: 1000 }),
    ['ping', '-n', '-c', '1', '-W', '1000', '-D', '-s', '1472', '10.8.0.5']);
  assert.equal(pingArgv('darwin', { address: '2001:db8::5', family: 6, df: true, payload: 1452, timeoutMs: 1000 })[0], 'ping6');
});

argv('IPv6 overhead is 48 bytes (40 IPv6 + 8 ICMPv6), IPv4 28', () => {
  assert.is(icmpOverhead(4), 28);
  assert.is(icmpOverhead(6), 48);
});

argv.run();

// ---

const parse = suite('parsePing on recorded outputs');

const cases: Array<[PingPlatform, string, PingOutcome]> = [
  ['linux', 'linux-reply.txt', { kind: 'reply', rttMs: 0.262 }],
  ['linux', 'linux-df-reply.txt', { kind: 'reply', rttMs: 0.037 }],
  ['linux', 'linux-df-frag-needed.txt', { kind: 'too-big', local: false, mtu: 1400 }],
  ['linux', 'linux-df-local-error.txt', { kind: 'too-big', local: true, mtu: 1400 }],
  ['linux', 'linux-timeout.txt', { kind: 'silent' }],
  ['linux', 'linux-host-unreachable.txt', { kind: 'unreachable', detail: 'From 10.195.8.129 icmp_seq=1 Destination Host Unreachable' }],
  ['linux', 'linux-network-unreachable.txt', { kind: 'unreachable', detail: 'ping: connect: Network is unreachable' }],
  ['linux', 'linux-unknown-host.txt', { kind: 'error', detail: 'ping: vm1.invalid: Name or service not known' }],
  ['win32', 'windows-df-reply.txt', { kind: 'reply', rttMs: 12 }],
  ['win32', 'windows-reply-under-1ms.txt', { kind: 'reply', rttMs: 0.5 }],
  ['win32', 'windows-df-needs-fragment.txt', { kind: 'too-big', local: false }],
  ['win32', 'windows-df-timeout.txt', { kind: 'silent' }],
  ['win32', 'windows-host-unreachable.txt', { kind: 'unreachable', detail: 'Reply from 10.8.0.1: Destination host unreachable.' }],
  ['win32', 'windows-unknown-host.txt', { kind: 'error', detail: 'Ping request could not find host vm1.invalid. Please check the name and try again.' }],
  ['win32', 'windows-german-reply.txt', { kind: 'reply', rttMs: 12 }],
  ['darwin', 'macos-df-reply.txt', { kind: 'reply', rttMs: 23.512 }],
  ['darwin', 'macos-df-message-too-long.txt', { kind: 'too-big', local: true }],
  ['darwin', 'macos-df-frag-needed.txt', { kind: 'too-big', local: false, mtu: 1400 }],
  ['darwin', 'macos-timeout.txt', { kind: 'silent' }],
  ['darwin', 'macos-host-unreachable.txt', { kind: 'unreachable', detail: '92 bytes from 10.8.0.1: Destination Host Unreachable' }],
  ['darwin', 'macos-unknown-host.txt', { kind: 'error', detail: 'ping: cannot resolve vm1.invalid: Unknown host' }],
];

for (const [platform, file, want] of cases) {
  parse(`${file} -> ${want.kind}`, () => {
    assert.equal(parsePing(platform, fixture(file)), want);
  });
}

parse('a Windows "Destination host unreachable" reply (exit 0, Received = 1) is never a reply', () => {
  assert.is.not(parsePing('win32', fixture('windows-host-unreachable.txt')).kind, 'reply');
});

parse('a macOS ICMP error line starts like a reply ("N bytes from") but is not one', () => {
  assert.is(parsePing('darwin', fixture('macos-df-frag-needed.txt')).kind, 'too-big');
});

parse('every fixture file is covered by a case', () => {
  const files = readdirSync(new URL('../fixtures/ping/', import.meta.url)).filter((f) => f.endsWith('.txt')).sort();
  assert.equal(files, cases.map((c) => c[1]).sort());
});

parse.run();
