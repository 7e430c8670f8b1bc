// Recipes are data (recipes/*.yaml) with a deliberately small vocabulary — no expressions, no
// templating beyond {host} and declared {param} names in step arguments. This file loads and
// validates them ({host} is HOST:PORT, {hostname} the host alone); every mistake is reported with file, line, field and what was expected.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type YAMLMap } from 'yaml';
import { CAUSE_NAMES } from './causes.ts';
import { UsageError } from './errors.ts';

export const RECIPES_DIR = fileURLToPath(new URL('../../recipes/', import.meta.url));
export const SCRIPTS_DIR = fileURLToPath(new URL('../', import.meta.url));

export interface RecipeStep {
  /** Stable id used by `if:` and by resume (`id:` in the file, else step-N). */
  id: string;
  name: string;
  kind: 'run' | 'check';
  script: string;
  on: 'server' | 'client';
  args: string[];
  /** check: the result's cause/status must be one of these, else the step fails. */
  expect: string[];
  /** Stop the whole recipe successfully when the result's cause/status is one of these. */
  stopWhen: string[];
  /** Run only when an earlier step's result matched. */
  when?: { step: string; is: string[] };
  /** Client steps that only make sense on one OS (e.g. a Windows-client registry value). */
  platform?: NodeJS.Platform;
  /**
   * A fix that may fail where the next, more drastic one still helps (a certificate TermService
   * cannot regenerate while its old key is unreadable: the MachineKeys repair is next). Default: stop.
   */
  onFailure?: 'continue';
  line: number;
}

export interface Recipe {
  name: string;
  summary: string;
  fixes: string[];
  /** `values`: the only values the parameter may take (checked before anything runs). */
  params: Record<string, { description: string; default?: string; values?: string[] }>;
  steps: RecipeStep[];
  file: string;
}

/** Where step scripts live; RDPFIX_SCRIPTS_DIR points tests at scripted stand-ins. */
export function scriptsDir(): string {
  return process.env.RDPFIX_SCRIPTS_DIR || SCRIPTS_DIR;
}

/** The checkout's fast path (./rdpfix NAME): runs dist/NAME.mjs, rebuilt first when it is stale. */
const LAUNCHER = fileURLToPath(new URL('../../rdpfix', import.meta.url));

/**
 * Node.js arguments that run script `name` with `args` as its own process, exactly as a user would:
 * the checkout's own scripts through the fast path (no TypeScript loader: ~0.3 s less a step), a
 * RDPFIX_SCRIPTS_DIR's scripts (stand-ins, another checkout) through tsx.
 */
export function scriptArgv(name: string, args: string[]): string[] {
  if (viaLauncher()) return [LAUNCHER, name, ...args];
  return ['--import', import.meta.resolve('tsx'), join(scriptsDir(), `${name}.ts`), ...args];
}

const viaLauncher = () => !process.env.RDPFIX_SCRIPTS_DIR && existsSync(LAUNCHER);

/**
 * Before a fleet's hosts start: rebuild the stale bundles among these scripts once (./rdpfix
 * --rebuild-stale, a note on stderr when it rebuilds), not once per parallel step. True when they are
 * current (or steps run through tsx); a failed rebuild is not fatal: each step then says so and runs
 * its source through tsx.
 */
export function freshenBundles(names: string[]): boolean {
  if (!viaLauncher() || !names.length) return true;
  const r = spawnSync(process.execPath, [LAUNCHER, '--rebuild-stale', ...new Set(names)], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  return r.status === 0;
}

/** Scripts a recipe may call: every scripts/*.ts except the entry points that orchestrate. */
export function knownScripts(dir = scriptsDir()): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !['start.ts', 'run-recipe.ts', 'undo.ts'].includes(f))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
}

export class RecipeError extends UsageError {}

const STEP_KEYS = ['id', 'name', 'run', 'check', 'on', 'args', 'expect', 'stop_when', 'when', 'platform', 'on_failure'];
const TOP_KEYS = ['name', 'summary', 'fixes', 'params', 'steps'];
const OUTCOMES = [...CAUSE_NAMES, 'ok', 'changed', 'would-change', 'failed', 'skipped'];

export function parseRecipe(text: string, file: string, scripts = knownScripts()): Recipe {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const where = (node: YamlNode | null | undefined) => (node?.range ? lc.linePos(node.range[0]).line : 1);
  const fail = (node: YamlNode | null | undefined, field: string, msg: string): never => {
    throw new RecipeError(`${file}:${where(node)}: ${field}: ${msg}`);
  };
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new RecipeError(`${file}:${lc.linePos(e.pos[0]).line}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (!isMap(root)) return fail(root, '(top level)', 'expected a mapping with name, summary, fixes, params, steps');

  const keyNode = (m: YAMLMap, k: string) => m.items.find((p) => isScalar(p.key) && p.key.value === k);
  const checkKeys = (m: YAMLMap, allowed: string[], field: string) => {
    for (const p of m.items) {
      const k = isScalar(p.key) ? String(p.key.value) : '?';
      if (!allowed.includes(k)) fail(p.key as YamlNode, `${field}${k}`, `unknown field; expected one of ${allowed.join(', ')}`);
    }
  };
  const str = (m: YAMLMap, k: string, field: string, required: boolean): string | undefined => {
    const p = keyNode(m, k);
    if (!p) return required ? fail(m, `${field}${k}`, 'missing; expected a string') : undefined;
    if (!isScalar(p.value) || typeof p.value.value !== 'string' || !p.value.value.trim()) {
      return fail((p.value as YamlNode) ?? (p.key as YamlNode), `${field}${k}`, 'expected a non-empty string');
    }
    return p.value.value;
  };
  const strList = (m: YAMLMap, k: string, field: string, allowed?: string[]): string[] => {
    const p = keyNode(m, k);
    if (!p) return [];
    const v = p.value as YamlNode;
    const items = isSeq(v) ? v.items : [v];
    return items.map((it) => {
      const n = it as YamlNode;
      if (!isScalar(n) || (typeof n.value !== 'string' && typeof n.value !== 'number')) fail(n, `${field}${k}`, 'expected a string or a list of strings');
      const s = String((n as { value: unknown }).value);
      if (allowed && !allowed.includes(s)) fail(n, `${field}${k}`, `unknown value ${JSON.stringify(s)}; expected one of ${allowed.join(', ')}`);
      return s;
    });
  };

  checkKeys(root, TOP_KEYS, '');
  const name = str(root, 'name', '', true)!;
  if (name !== basename(file).replace(/\.ya?ml$/, '')) fail(keyNode(root, 'name')!.value as YamlNode, 'name', `must match the file name (${basename(file)})`);
  const summary = str(root, 'summary', '', true)!;
  const fixes = strList(root, 'fixes', '', CAUSE_NAMES as string[]);
  if (!fixes.length) fail(root, 'fixes', 'missing; expected the list of causes this recipe fixes');

  const params: Recipe['params'] = {};
  const pNode = keyNode(root, 'params');
  if (pNode) {
    if (!isMap(pNode.value)) fail(pNode.value as YamlNode, 'params', 'expected a mapping of NAME: { description, default }');
    for (const p of (pNode.value as YAMLMap).items) {
      const k = String((p.key as { value: unknown }).value);
      if (!/^[a-z][a-z0-9_]*$/.test(k) || k === 'host' || k === 'hostname') fail(p.key as YamlNode, `params.${k}`, 'expected a lower-case name (not "host" or "hostname", which are always given)');
      if (!isMap(p.value)) fail(p.value as YamlNode, `params.${k}`, 'expected { description: ..., default: ... }');
      const m = p.value as YAMLMap;
      checkKeys(m, ['description', 'default', 'values'], `params.${k}.`);
      const def = str(m, 'default', `params.${k}.`, false);
      const values = keyNode(m, 'values') ? strList(m, 'values', `params.${k}.`) : undefined;
      if (values && !values.length) fail(m, `params.${k}.values`, 'expected a non-empty list');
      if (values && def !== undefined && !values.includes(def)) fail(keyNode(m, 'default')!.value as YamlNode, `params.${k}.default`, `${JSON.stringify(def)} is not one of the values ${values.join(', ')}`);
      params[k] = { description: str(m, 'description', `params.${k}.`, true)!, ...(def !== undefined ? { default: def } : {}), ...(values ? { values } : {}) };
    }
  }

  const sNode = keyNode(root, 'steps');
  if (!sNode || !isSeq(sNode.value) || !sNode.value.items.length) {
    return fail((sNode?.value as YamlNode) ?? root, 'steps', 'expected a non-empty list of steps');
  }
  const steps: RecipeStep[] = [];
  sNode.value.items.forEach((item, i) => {
    const f = `steps[${i + 1}].`;
    const n = item as YamlNode;
    if (!isMap(n)) fail(n, `steps[${i + 1}]`, 'expected a mapping with name and run or check');
    const m = n as YAMLMap;
    checkKeys(m, STEP_KEYS, f);
    const run = str(m, 'run', f, false);
    const check = str(m, 'check', f, false);
    if (!!run === !!check) fail(m, `${f}run`, 'expected exactly one of run: SCRIPT or check: SCRIPT');
    const script = (run ?? check)!;
    if (!scripts.includes(script)) fail(keyNode(m, run ? 'run' : 'check')!.value as YamlNode, `${f}${run ? 'run' : 'check'}`, `unknown script ${JSON.stringify(script)}; expected one of ${scripts.join(', ')}`);
    const on = (str(m, 'on', f, false) ?? (check ? 'client' : undefined)) as RecipeStep['on'] | undefined;
    if (!on) fail(m, `${f}on`, 'missing; expected server or client');
    if (on !== 'server' && on !== 'client') fail(keyNode(m, 'on')!.value as YamlNode, `${f}on`, `expected server or client, got ${JSON.stringify(on)}`);
    const args = strList(m, 'args', f);
    for (const a of args) {
      for (const [, ph] of a.matchAll(/\{([^}]*)\}/g)) {
        if (ph !== 'host' && ph !== 'hostname' && !(ph! in params)) fail(keyNode(m, 'args')!.value as YamlNode, `${f}args`, `unknown placeholder {${ph}}; expected {host}, {hostname} or a declared param (${Object.keys(params).join(', ') || 'none declared'})`);
        // A server step runs on the server, which needs no client's view of its own address; that
        // keeps one pasted script right for every host of a fleet.
        if (on === 'server' && (ph === 'host' || ph === 'hostname')) fail(keyNode(m, 'args')!.value as YamlNode, `${f}args`, `{${ph}} is for client steps; a server step runs on the host itself`);
      }
      if (a.startsWith('--') && a.includes('=') && /\{/.test(a)) fail(keyNode(m, 'args')!.value as YamlNode, `${f}args`, `write ${JSON.stringify(a.slice(0, a.indexOf('=')))} and its value as two items; the runner joins them`);
    }
    const id = str(m, 'id', f, false) ?? `step-${i + 1}`;
    if (steps.some((s) => s.id === id)) fail(m, `${f}id`, `duplicate id ${JSON.stringify(id)}`);
    let when: RecipeStep['when'];
    const wNode = keyNode(m, 'when');
    if (wNode) {
      if (!isMap(wNode.value)) fail(wNode.value as YamlNode, `${f}when`, 'expected { step: ID, is: [outcomes] }');
      const wm = wNode.value as YAMLMap;
      checkKeys(wm, ['step', 'is'], `${f}when.`);
      const ws = str(wm, 'step', `${f}when.`, true)!;
      if (!steps.some((s) => s.id === ws)) fail(keyNode(wm, 'step')!.value as YamlNode, `${f}when.step`, `no earlier step has id ${JSON.stringify(ws)}`);
      const is = strList(wm, 'is', `${f}when.`, OUTCOMES);
      if (!is.length) fail(wm, `${f}when.is`, 'missing; expected the outcomes that make this step run');
      when = { step: ws, is };
    }
    const onFailure = str(m, 'on_failure', f, false);
    if (onFailure !== undefined && onFailure !== 'stop' && onFailure !== 'continue') fail(keyNode(m, 'on_failure')!.value as YamlNode, `${f}on_failure`, 'expected stop (the default) or continue');
    if (onFailure === 'continue' && !run) fail(keyNode(m, 'on_failure')!.value as YamlNode, `${f}on_failure`, 'only a run step can go on after failing; a check that fails stops the recipe');
    const platform = str(m, 'platform', f, false);
    if (platform && !['win32', 'linux', 'darwin'].includes(platform)) fail(keyNode(m, 'platform')!.value as YamlNode, `${f}platform`, 'expected win32, linux or darwin');
    steps.push({
      id,
      name: str(m, 'name', f, true)!,
      kind: run ? 'run' : 'check',
      script,
      on: on!,
      args,
      expect: strList(m, 'expect', f, OUTCOMES),
      stopWhen: strList(m, 'stop_when', f, OUTCOMES),
      ...(when ? { when } : {}),
      ...(platform ? { platform: platform as NodeJS.Platform } : {}),
      ...(onFailure === 'continue' ? { onFailure: 'continue' as const } : {}),
      line: where(n),
    });
  });
  return { name, summary, fixes, params, steps, file };
}

/** Load a recipe by name (recipes/NAME.yaml) or by path. */
export function loadRecipe(nameOrPath: string, dir = RECIPES_DIR, scripts?: string[]): Recipe {
  const file = /[\\/]|\.ya?ml$/.test(nameOrPath) ? nameOrPath : join(dir, `${nameOrPath}.yaml`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    const names = listRecipes(dir).join(', ');
    throw new RecipeError(`unknown recipe ${JSON.stringify(nameOrPath)}; expected one of ${names}`);
  }
  return parseRecipe(text, file, scripts);
}

export function listRecipes(dir = RECIPES_DIR): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, '')).sort();
  } catch {
    return [];
  }
}

const PLACEHOLDER = /\{([a-z_][a-z0-9_]*)\}/g;

/**
 * A step's arguments with {host}, {hostname} and declared {param}s substituted, shaped so that no
 * value can ever be read as an option: an option followed by a value becomes one `--opt=VALUE`
 * argument, and positional values come back separately, to go after `--`. Literal words the
 * recipe wrote (`status`, `--regenerate-cert`) stay where they are.
 */
export function stepArgs(step: RecipeStep, values: Record<string, string>): { args: string[]; positionals: string[] } {
  const fill = (a: string) => a.replace(PLACEHOLDER, (_, k: string) => values[k] ?? '');
  const hasValue = (a: string | undefined) => a !== undefined && /\{[a-z_][a-z0-9_]*\}/.test(a);
  const args: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < step.args.length; i++) {
    const a = step.args[i]!;
    if (/^--[a-z][a-z0-9-]*$/.test(a) && hasValue(step.args[i + 1])) {
      args.push(`${a}=${fill(step.args[++i]!)}`);
    } else if (hasValue(a)) {
      positionals.push(fill(a));
    } else {
      args.push(a);
    }
  }
  return { args, positionals };
}
