// Where lab suites live: a test that builds namespaces, starts xrdp or needs root is in
// test/lab/*.lab.test.ts (or the lab's own test/lab/lab.test.ts), never in a unit file, so every
// unit file runs without root. Reads the test files only; needs nothing.
// Run: npx tsx test/lab/placement.test.ts
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('../..', import.meta.url));
const testDir = join(root, 'test');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    if (d.name === 'fixtures' || d.name === 'golden' || d.name === 'node_modules') return [];
    const p = join(dir, d.name);
    return d.isDirectory() ? testFiles(p) : d.name.endsWith('.test.ts') ? [p] : [];
  });
}

// The lab helpers that build or drive namespaced hosts (labCerts and rdp-bytes only make files and bytes).
const LAB_MODULES = ['netns', 'fleet', 'peers', 'rdpfix-calls', 'lab-client', 'rdp-responder', 'ns-call', 'peer-server', 'delay'];
// Prerequisites only a lab suite has: a gate naming one of them marks a lab suite.
const LAB_NEEDS = ['root', 'netns', 'xrdp', 'iptables', 'socat', 'tracepath', 'nmap'];

/** Why a test file holds a lab suite (empty when it does not). */
function labMarks(text: string): string[] {
  const marks: string[] = [];
  for (const m of text.matchAll(/^import [^;]*? from '(?:\.\.?\/)+(?:lab\/)?([\w-]+)\.ts';$/gm)) {
    if (LAB_MODULES.includes(m[1]!)) marks.push(`imports lab/${m[1]}.ts`);
  }
  for (const m of text.matchAll(/\blab(?:Gate|Missing)\([^)]*?\[([^\]]*)\]/g)) {
    const needs = [...m[1]!.matchAll(/'([\w-]+)'/g)].map((x) => x[1]!);
    const lab = needs.filter((n) => LAB_NEEDS.includes(n));
    if (lab.length) marks.push(`gates on ${lab.join(', ')}`);
  }
  return marks;
}

const place = suite('lab suites in test/lab/*.lab.test.ts');

place('the check sees a lab suite: a lab import or a gate on root, netns or xrdp; not a gate on openssl alone', () => {
  assert.equal(labMarks("import { createTopology } from './lab/netns.ts';"), ['imports lab/netns.ts']);
  assert.equal(labMarks("import { createFleet } from './fleet.ts';"), ['imports lab/fleet.ts']);
  assert.equal(labMarks("if (labGate('x', ['root', 'netns', 'xrdp'])) {"), ['gates on root, netns, xrdp']);
  assert.equal(labMarks("if (labMissing(['root', 'netns']).length === 0) cleanupStaleLab();"), ['gates on root, netns']);
  assert.equal(labMarks("import { labCerts } from '../lab/xrdp.ts';\nif (labGate('tls', ['openssl'])) {"), []);
});

place('no unit file holds a lab suite; every *.lab.test.ts does', () => {
  const files = testFiles(testDir);
  const unitWithLab = files
    // (This file is skipped: its own examples above would read as lab suites.)
    .filter((f) => !f.endsWith('.lab.test.ts') && relative(testDir, f) !== join('lab', 'lab.test.ts') && f !== fileURLToPath(import.meta.url))
    .map((f) => [relative(root, f), labMarks(readFileSync(f, 'utf8'))] as const)
    .filter(([, marks]) => marks.length > 0);
  assert.equal(unitWithLab, [], 'move these suites to test/lab/<script>.lab.test.ts');
  const labFiles = files.filter((f) => f.endsWith('.lab.test.ts'));
  assert.ok(labFiles.length > 0, 'there are lab files');
  for (const f of labFiles) {
    assert.is(relative(testDir, f).split(/[\\/]/)[0], 'lab', `${relative(root, f)} belongs in test/lab/`);
    assert.ok(labMarks(readFileSync(f, 'utf8')).length > 0, `${relative(root, f)} holds no lab suite`);
  }
});

place.run();
