// The real PowerShell grammar (tree-sitter-powershell's wasm through web-tree-sitter), for tests
// of generated scripts: we cannot run PowerShell here, so every script must at least parse.
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { Language, Parser, type Node } from 'web-tree-sitter';

let parser: Parser | undefined;

export async function psParser(): Promise<Parser> {
  if (parser) return parser;
  // The grammar is a large wasm module: V8's optimising tier would spend ~6 s of CPU recompiling it
  // in the background (and exit waits for that). The baseline compiler is plenty for tests.
  setFlagsFromString('--liftoff-only');
  await Parser.init();
  const require = createRequire(import.meta.url);
  const wasm = require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm');
  const lang = await Language.load(wasm);
  parser = new Parser();
  parser.setLanguage(lang);
  return parser;
}

export function* walk(node: Node): Generator<Node> {
  yield node;
  for (const c of node.children) if (c) yield* walk(c);
}

/** ERROR and MISSING nodes, with line:column, for a readable failure message. */
export async function parseProblems(script: string): Promise<string[]> {
  const p = await psParser();
  const tree = p.parse(script);
  if (!tree) return ['parser returned no tree'];
  const problems: string[] = [];
  for (const n of walk(tree.rootNode)) {
    if (n.type === 'ERROR' || n.isMissing) {
      const line = script.split('\n')[n.startPosition.row] ?? '';
      problems.push(`${n.isMissing ? 'MISSING ' + n.type : 'ERROR'} at ${n.startPosition.row + 1}:${n.startPosition.column + 1}: ${line.trim().slice(0, 100)}`);
    }
  }
  tree.delete();
  return problems;
}

/** Every node of a type, e.g. all command names (for allowlist checks). */
export async function nodesOfType(script: string, type: string): Promise<string[]> {
  const p = await psParser();
  const tree = p.parse(script);
  if (!tree) return [];
  const out = [...walk(tree.rootNode)].filter((n) => n.type === type).map((n) => n.text);
  tree.delete();
  return out;
}
