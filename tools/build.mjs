// The fast path's build: one self-contained ES module per script, dist/NAME.mjs, bundled with the
// esbuild that tsx brings (a runtime dependency). Run by `npm ci` / `npm install` (package.json
// `prepare`), and by ./rdpfix for one script whose bundle is missing or older than its sources.
//
// - Every module keeps the location of its source: `import.meta.url` in a bundled module (ours and
//   the dependencies') is rewritten to the URL of its source file (relative to the bundle), so scripts/lib/ps-loader.ts still
//   reads scripts/ps/*.ps1 and scripts/lib/recipe.ts recipes/*.yaml, and yargs finds its locales.
//   Only the entry's own `import.meta.url` stays the bundle's: its main guard (isMain) compares it
//   with process.argv[1], and start.ts finds dist/diagnose.mjs next to itself.
// - scripts/ps/*.ps1 are built into every bundle that generates PowerShell (lib/ps-loader.ts), so a
//   single copied bundle (e.g. dist/restart-termserv.mjs on a server with only Node) still emits and
//   runs its steps. recipes/*.yaml are not: run-recipe (and diagnose --fix) read them, and run their
//   steps' scripts, from the checkout.
// - dist/NAME.inputs.json lists each bundle's inputs (esbuild's metafile), so ./rdpfix can tell a
//   stale bundle by mtimes without reading any source.
// - Output is deterministic (no timestamps, sorted keys) and written atomically (temp + rename), so
//   two rdpfix runs rebuilding at once cannot leave half a file.
//
// Usage: node tools/build.mjs [NAME...]   (no NAME: every script in scripts/)
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DIST = join(ROOT, 'dist');
export const SCRIPTS = join(ROOT, 'scripts');

/** The script names: scripts/NAME.ts (not scripts/lib). */
export function scriptNames() {
  return readdirSync(SCRIPTS)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

// The main guard of an entry (`isMain(import.meta.url)`) and start.ts's `new URL('./diagnose...', import.meta.url)`
// must see the bundle's own URL; everything else the source's.
const META_URL = /\bimport\.meta\.url\b/g;

/** esbuild plugin: `import.meta.url` of every non-entry module becomes its source file's URL. */
function sourceUrls(entries) {
  const isEntry = new Set(entries.map((e) => resolve(e)));
  return {
    name: 'rdpfix-source-urls',
    setup(b) {
      b.onLoad({ filter: /\.(?:[cm]?[jt]s)$/ }, (args) => {
        if (isEntry.has(resolve(args.path))) return undefined;
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        // Relative to the bundle, so the package can move (npm pack, a copied checkout).
        const rel = JSON.stringify(relative(DIST, args.path).split(sep).join('/'));
        const url = `new URL(${rel}, import.meta.url).href`;
        const loader = /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js';
        return { contents: text.replace(META_URL, url), loader, resolveDir: dirname(args.path) };
      });
    },
  };
}

/** scripts/ps/*.ps1 by name (lib/ps-loader.ts reads them from the bundle, see EMBEDDED there). */
function embeddedPs() {
  const dir = join(SCRIPTS, 'ps');
  const names = readdirSync(dir).filter((f) => f.endsWith('.ps1')).sort();
  return {
    texts: Object.fromEntries(names.map((f) => [f.slice(0, -4), readFileSync(join(dir, f), 'utf8')])),
    files: names.map((f) => join('scripts', 'ps', f)),
  };
}

/**
 * esbuild plugin: yargs lays out --help with string-width, whose Unicode tables cost ~40 ms of a
 * 200 ms `--help` (a CPU profile of dist/diagnose.mjs). Printable ASCII is one column a character,
 * so that text is measured by its length and anything else by the real string-width: the same widths.
 */
const asciiWidth = {
  name: 'rdpfix-ascii-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData === 'real') return undefined;
      const real = await b.resolve('string-width', { resolveDir: args.resolveDir, kind: args.kind, importer: args.importer, pluginData: 'real' });
      if (real.errors.length) return { errors: real.errors };
      return { path: real.path, namespace: 'rdpfix-ascii-width' };
    });
    b.onLoad({ filter: /.*/, namespace: 'rdpfix-ascii-width' }, (args) => ({
      contents: `import realWidth from ${JSON.stringify(args.path)};
export default function stringWidth(s, o) {
  return typeof s === 'string' && /^[\\x20-\\x7e]*$/.test(s) ? s.length : realWidth(s, o);
}
`,
      loader: 'js',
      resolveDir: dirname(args.path),
    }));
  },
};

/**
 * Bundle the named scripts into dist/. Returns { name: inputs } (paths relative to the root).
 * Throws when esbuild is missing or a script does not build.
 */
export async function build(names = scriptNames()) {
  const esbuild = await import('esbuild');
  mkdirSync(DIST, { recursive: true });
  const ps = embeddedPs();
  const entries = names.map((name) => join(SCRIPTS, `${name}.ts`));
  // One build for all: esbuild parses each shared module once; every output is still self-contained
  // (no code splitting).
  const r = await esbuild.build({
    entryPoints: entries,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
    // Minified (names kept, for stack traces and anything that reads a function's name): a third
    // less to parse and compile at every start (restart-termserv --help 410 -> 344 ms, one loaded run).
    minify: true,
    keepNames: true,
    // CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __rdpfixCreateRequire } from 'node:module';\nconst require = __rdpfixCreateRequire(import.meta.url);" },
    plugins: [asciiWidth, sourceUrls(entries)],
    define: { __RDPFIX_EMBEDDED_PS__: JSON.stringify(ps.texts) },
    outdir: DIST,
    entryNames: '[name]',
    outExtension: { '.js': '.mjs' },
  });
  const results = names.map((name) => {
    const file = join(DIST, `${name}.mjs`);
    const out = r.outputFiles.find((o) => resolve(o.path) === file);
    if (!out) throw new Error(`esbuild wrote no ${relative(ROOT, file)}`);
    const meta = Object.entries(r.metafile.outputs).find(([p]) => resolve(p) === file)?.[1];
    if (!meta) throw new Error(`esbuild's metafile has no ${relative(ROOT, file)}`);
    // esbuild names inputs relative to the working directory, a plugin's with its namespace
    // (and `<define:...>` for a define, which is no file).
    const inputs = Object.keys(meta.inputs).filter((p) => !p.startsWith('<')).map((p) => relative(ROOT, resolve(p.replace(/^[a-z-]+:/, ''))));
    // A bundle with the PowerShell loader carries scripts/ps/*.ps1: they are its inputs too.
    if (inputs.includes(join('scripts', 'lib', 'ps-loader.ts'))) inputs.push(...ps.files);
    const sorted = [...new Set(inputs)].sort();
    // One inputs file per bundle, written whole: two builds of different bundles at once (parallel
    // recipe steps) cannot drop each other's list, as a shared file rewritten by both could.
    // The list first, then the bundle: a build stopped between the two leaves a new list next to the
    // old bundle, which errs towards a rebuild, never a new bundle checked against an old list.
    const listTmp = join(DIST, `.${name}.inputs.json.${process.pid}.tmp`);
    writeFileSync(listTmp, JSON.stringify(sorted, null, 1) + '\n');
    renameSync(listTmp, join(DIST, `${name}.inputs.json`));
    const tmp = join(DIST, `.${name}.mjs.${process.pid}.tmp`);
    writeFileSync(tmp, out.contents);
    renameSync(tmp, file);
    return [name, sorted];
  });
  // The single manifest of earlier builds is no longer read.
  rmSync(join(DIST, 'manifest.json'), { force: true });
  return Object.fromEntries(results);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !scriptNames().includes(n));
  if (unknown.length) {
    process.stderr.write(`tools/build.mjs: no script ${unknown.map((n) => JSON.stringify(n)).join(', ')} in scripts/\n`);
    process.exit(2);
  }
  try {
    const built = await build(names.length ? names : undefined);
    process.stderr.write(`rdpfix: built ${Object.keys(built).length} bundles in dist/ (${Date.now() - t0} ms)\n`);
  } catch (e) {
    process.stderr.write(`rdpfix: building dist/ failed: ${e instanceof Error ? e.message : String(e)}\n  ./rdpfix will run the scripts through tsx instead (slower).\n`);
    // A failed bundle must not fail `npm ci`: the scripts still run through tsx.
    process.exit(0);
  }
}
