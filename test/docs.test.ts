// The documentation stays inside the repository and navigable: no file points outside it (no
// path into a sibling folder such as the shared notes, no citation of the notes' REFERENCE file
// outside docs/; the Windows facts live in docs/windows-reference.md), every relative link in a
// Markdown file leads to a file in the repository that exists (and to a heading there that exists),
// README.md is a user manual of at most 300 lines, and it links to every document in docs/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SKIP_DIRS = new Set(['node_modules', '.git']);

/** Every text file in the repository (tracked or not), as a path relative to the root with '/'. */
function repoFiles(dir = root): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) out.push(...repoFiles(join(dir, e.name)));
    } else if (e.isFile()) {
      out.push(relative(root, join(dir, e.name)).split(sep).join('/'));
    }
  }
  return out.sort();
}

const files = repoFiles();
const text = new Map<string, string>();
for (const f of files) {
  const buf = readFileSync(join(root, f));
  if (!buf.includes(0)) text.set(f, buf.toString('utf8'));
}
const markdown = files.filter((f) => f.endsWith('.md'));
const docs = markdown.filter((f) => /^docs\/[^/]+\.md$/.test(f));

// Written so that this file does not match itself.
const SIBLING = new RegExp('\\.\\./' + 'shared\\b');
const NOTES = new RegExp('REFERENCE' + '\\.md');

/** Lines outside fenced code blocks, with their 1-based numbers. */
function prose(md: string): Array<{ n: number; line: string }> {
  const out: Array<{ n: number; line: string }> = [];
  let fence: string | null = null;
  md.split('\n').forEach((line, i) => {
    const f = /^\s*(```+|~~~+)/.exec(line);
    if (f) {
      if (fence === null) fence = f[1]!;
      else if (f[1]!.startsWith(fence)) fence = null;
      return;
    }
    if (fence === null) out.push({ n: i + 1, line });
  });
  return out;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', repeats numbered. */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { line } of prose(md)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = h[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const k = seen.get(base) ?? 0;
    seen.set(base, k + 1);
    out.add(k === 0 ? base : `${base}-${k}`);
  }
  return out;
}

/** The relative links of a Markdown file (outside code blocks and inline code). */
function links(md: string): Array<{ n: number; target: string }> {
  const out: Array<{ n: number; target: string }> = [];
  for (const { n, line } of prose(md)) {
    const plain = line.replace(/`[^`]*`/g, '');
    for (const m of plain.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ n, target: m[1]! });
    for (const m of plain.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/g)) out.push({ n, target: m[1]! });
  }
  return out.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l.target));
}

const inside = suite('nothing points outside the repository');

inside('the repository has the files this test reads', () => {
  assert.ok(text.has('README.md'), 'README.md');
  assert.ok(docs.length > 0, 'docs/*.md');
  assert.ok(files.some((f) => f.startsWith('scripts/')) && files.some((f) => f.startsWith('test/')), 'scripts/ and test/');
});

inside('no file names a path into a sibling folder of the repository, nor the notes file outside docs/', () => {
  const bad: string[] = [];
  for (const [f, t] of text) {
    t.split('\n').forEach((line, i) => {
      if (SIBLING.test(line)) bad.push(`${f}:${i + 1}: ${line.trim()}`);
      else if (!f.startsWith('docs/') && NOTES.test(line)) bad.push(`${f}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.equal(bad, [], `files that point outside the repository (the facts belong in docs/windows-reference.md):\n${bad.join('\n')}`);
});

inside('every relative link in a Markdown file stays in the repository and leads to a file (and heading) that exists', () => {
  const bad: string[] = [];
  for (const f of markdown) {
    for (const { n, target } of links(text.get(f) ?? '')) {
      const [pathPart, anchor] = target.split('#', 2) as [string, string | undefined];
      const dest = pathPart === '' ? join(root, f) : resolve(root, dirname(f), decodeURIComponent(pathPart));
      const rel = relative(root, dest);
      if (rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) {
        bad.push(`${f}:${n}: ${target} leaves the repository`);
        continue;
      }
      let exists = false;
      try {
        statSync(dest);
        exists = true;
      } catch {
        /* reported below */
      }
      if (!exists) {
        bad.push(`${f}:${n}: ${target}: no such file`);
        continue;
      }
      if (anchor !== undefined && dest.endsWith('.md')) {
        const have = anchors(readFileSync(dest, 'utf8'));
        if (!have.has(anchor)) bad.push(`${f}:${n}: ${target}: no heading #${anchor} in ${rel.split(sep).join('/')}`);
      }
    }
  }
  assert.equal(bad, [], bad.join('\n'));
});

inside('the link checker itself catches a link that leaves the repository, a missing file and a missing heading', () => {
  const sample = '# Title\n\n## A `code` heading: here\n\n[up](../../x.md) [gone](nope.md) [head](#nope) [ok](#a-code-heading-here)\n```\n[in code](../fenced.md)\n```\n';
  assert.equal(links(sample).map((l) => l.target), ['../../x.md', 'nope.md', '#nope', '#a-code-heading-here']);
  assert.ok(anchors(sample).has('a-code-heading-here'));
  assert.not.ok(anchors(sample).has('nope'));
  assert.ok(relative(root, resolve(root, 'docs', '../../x.md')).startsWith('..'));
  assert.ok(SIBLING.test('see ' + '..' + '/shared/notes') && NOTES.test('REFERENCE' + '.md'));
});

const manual = suite('README is the user manual');

manual('README.md has at most 300 lines', () => {
  const lines = text.get('README.md')!.replace(/\n$/, '').split('\n').length;
  assert.ok(lines <= 300, `README.md has ${lines} lines; move details into docs/`);
});

manual('README.md links to every document in docs/', () => {
  const linked = new Set(links(text.get('README.md')!).map((l) => l.target.split('#')[0]!));
  for (const d of docs) assert.ok(linked.has(d), `README.md links to ${d}`);
});

inside.run();
manual.run();
