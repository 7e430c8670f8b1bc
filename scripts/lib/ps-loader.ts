// PowerShell lives in scripts/ps/*.ps1 as PowerShell: one file per shared concern and one per step.
// A file holds only function definitions (so it dot-sources cleanly in a PowerShell session) and
// may say what it needs in one header line, `# requires: registry, sddl`. This loader resolves those
// requirements in dependency order, takes each file once, keeps only the functions the step's entry
// function reaches (directly or through functions it calls), and hands the text to buildScript with
// one generated call line. Values reach the script only through its $P block: the functions are
// included byte for byte as they stand in their files.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildScript, type PsValue } from './ps.ts';

export const PS_DIR = fileURLToPath(new URL('../ps/', import.meta.url));

declare const __RDPFIX_EMBEDDED_PS__: Record<string, string> | undefined;
/**
 * scripts/ps/*.ps1 by name as a bundle (dist/NAME.mjs, tools/build.mjs) carries them, so that one
 * copied bundle file still generates its PowerShell; null when running from the source.
 */
const EMBEDDED: Record<string, string> | null = typeof __RDPFIX_EMBEDDED_PS__ === 'undefined' ? null : __RDPFIX_EMBEDDED_PS__;

export interface PsFunction {
  name: string;
  file: string;
  text: string;
}

export interface PsFile {
  name: string;
  requires: string[];
  functions: PsFunction[];
}

const cache = new Map<string, PsFile>();

/**
 * Split a .ps1 file into its functions. The format is fixed (and checked on the grammar by the
 * tests): `function Name {` at column 0 up to the first `}` alone at column 0 that is not inside a
 * here-string; between functions only comments and blank lines (`lenient`: anything, for reading
 * the functions back out of a generated script).
 */
export function parsePsFile(name: string, text: string, o: { lenient?: boolean } = {}): PsFile {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const requires: string[] = [];
  const functions: PsFunction[] = [];
  let current: { name: string; start: number } | null = null;
  let hereString: string | null = null;
  lines.forEach((line, i) => {
    const where = `${name}.ps1:${i + 1}`;
    if (current) {
      if (hereString) {
        if (line.startsWith(hereString)) hereString = null;
      } else if (/@['"]$/.test(line)) {
        hereString = line.endsWith(`@'`) ? `'@` : `"@`;
      } else if (line === '}') {
        functions.push({ name: current.name, file: name, text: lines.slice(current.start, i + 1).join('\n') });
        current = null;
      }
      return;
    }
    const fn = /^function ([A-Za-z]+-[A-Za-z0-9]+) \{$/.exec(line);
    if (fn) {
      current = { name: fn[1]!, start: i };
      return;
    }
    const req = /^# requires:(.*)$/.exec(line);
    if (req) {
      requires.push(...req[1]!.split(',').map((r) => r.trim()).filter(Boolean));
      return;
    }
    if (line.trim() === '' || line.startsWith('#') || o.lenient) return;
    throw new Error(`${where}: only functions, comments and a "# requires:" line may stand at the top level of a step file`);
  });
  if (current) throw new Error(`${name}.ps1: function ${(current as { name: string }).name} has no closing "}" at column 0`);
  return { name, requires, functions };
}

export function readPsFile(name: string, dir = PS_DIR): PsFile {
  const key = `${dir}\0${name}`;
  let f = cache.get(key);
  if (!f) {
    if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`bad PowerShell file name: ${name}`);
    const embedded = dir === PS_DIR ? EMBEDDED?.[name] : undefined;
    f = parsePsFile(name, embedded ?? readFileSync(`${dir}${name}.ps1`, 'utf8'));
    cache.set(key, f);
  }
  return f;
}

/** The files a step needs, each once, every file after the files it requires. */
export function resolvePsFiles(names: string[], dir = PS_DIR): PsFile[] {
  const out: PsFile[] = [];
  const visiting = new Set<string>();
  const visit = (n: string, from: string[]) => {
    if (out.some((f) => f.name === n)) return;
    if (visiting.has(n)) throw new Error(`PowerShell files require each other in a circle: ${[...from, n].join(' -> ')}`);
    visiting.add(n);
    const f = readPsFile(n, dir);
    for (const r of f.requires) visit(r, [...from, n]);
    visiting.delete(n);
    out.push(f);
  };
  for (const n of names) visit(n, []);
  return out;
}

const calls = (text: string, names: string[]) => names.filter((n) => new RegExp(`(?<![\\w-])${n.replace(/-/g, '\\-')}(?![\\w-])`, 'i').test(text));

/**
 * The functions reachable from `entries`, in file order (requirements first), each once. A name
 * defined twice across the files is an error: PowerShell would silently keep the last one.
 */
export function reachableFunctions(files: PsFile[], entries: string[]): PsFunction[] {
  const all = files.flatMap((f) => f.functions);
  const byName = new Map<string, PsFunction>();
  for (const fn of all) {
    const k = fn.name.toLowerCase();
    if (byName.has(k)) throw new Error(`function ${fn.name} is defined in ${byName.get(k)!.file}.ps1 and in ${fn.file}.ps1`);
    byName.set(k, fn);
  }
  const names = all.map((f) => f.name);
  const keep = new Set<string>();
  const queue = [...entries];
  while (queue.length) {
    const n = queue.shift()!;
    const fn = byName.get(n.toLowerCase());
    if (!fn) throw new Error(`no PowerShell function ${n} in ${files.map((f) => `${f.name}.ps1`).join(', ')}`);
    if (keep.has(fn.name)) continue;
    keep.add(fn.name);
    queue.push(...calls(fn.text.slice(fn.text.indexOf('\n')), names).filter((c) => !keep.has(c)));
  }
  return all.filter((f) => keep.has(f.name));
}

export interface PsStepSpec {
  /** The step name in the header and the result, e.g. 'restart-termserv'. */
  name: string;
  summary: string;
  /** The step's .ps1 file (scripts/ps/FILE.ps1); it names what else it needs. */
  file: string;
  /** The function the script calls; its parameters are the names of `params` (DryRun becomes -WhatIf). */
  entry: string;
  params: Record<string, PsValue>;
  /** Switches the call always passes (a constant of the step, e.g. an undo's -RemoveTask), before -WhatIf. */
  switches?: string[];
  runsOn?: 'server' | 'client';
  /**
   * Whether the step needs Administrator rights (default true; the read-only inspect-server and route
   * lookup do not). Every step starts with Assert-RdpHost (scripts/ps/windows.ps1): on anything but
   * Windows, or unelevated when this is true, the script's one JSON result is `failed` with the reason.
   */
  elevated?: boolean;
  /** A step that changes no setting: the header's sentence saying so (lib/ps.ts ScriptSpec.readOnly). */
  readOnly?: string;
  dir?: string;
}

/**
 * The one call line: every $P value by name (a switch as -Name:$P.Name), DryRun as -WhatIf. No
 * value is written into it.
 */
export function psCall(entry: string, params: Record<string, PsValue>, switches: string[] = []): string {
  const named = Object.entries(params).filter(([k]) => k !== 'DryRun').map(([k, v]) => (typeof v === 'boolean' ? `-${k}:$P.${k}` : `-${k} $P.${k}`));
  for (const sw of switches) if (!/^[A-Z][A-Za-z]+$/.test(sw)) throw new TypeError(`bad switch name: ${sw}`);
  return ['$Result =', entry, ...named, ...switches.map((sw) => `-${sw}`), ...('DryRun' in params ? ['-WhatIf:$P.DryRun'] : [])].join(' ');
}

/** The parameter through which a changing step learns the client's journal entry (lib/target-record.ts). */
export const RECORD_TAG_PARAM = 'RecordTag';

/** Does this entry function write a target record (it declares a -RecordTag parameter)? */
export function entryWritesRecord(fn: PsFunction): boolean {
  // Only an entry's parameter block declares it; a body that uses it writes $RecordTag alone.
  return /\[string\]\$RecordTag\b/.test(fn.text);
}

/**
 * What a step script includes: the files, the functions (in order), the call and the parameters.
 * An entry that writes a target record (scripts/ps/record.ps1) gets RecordTag = '' in its $P block
 * (the runner puts the client's journal entry id there; a pasted script leaves it empty) and a
 * last line that completes the record with the result.
 */
export function psStepParts(spec: PsStepSpec): { files: string[]; functions: PsFunction[]; call: string; params: Record<string, PsValue> } {
  const files = resolvePsFiles(['windows', spec.file], spec.dir);
  const guard = `Assert-RdpHost${spec.elevated === false ? '' : ' -Elevated'}`;
  const entry = reachableFunctions(files, [spec.entry]).find((f) => f.name.toLowerCase() === spec.entry.toLowerCase())!;
  const records = entryWritesRecord(entry);
  const params: Record<string, PsValue> = records && !(RECORD_TAG_PARAM in spec.params) ? { ...spec.params, [RECORD_TAG_PARAM]: '' } : spec.params;
  return {
    files: files.map((f) => f.name),
    functions: reachableFunctions(files, ['Assert-RdpHost', spec.entry, ...(records ? ['Complete-RdpTargetRecord'] : [])]),
    call: `${guard}\n${psCall(spec.entry, params, spec.switches)}${records ? '\nComplete-RdpTargetRecord -Result $Result' : ''}`,
    params,
  };
}

/** The complete, self-contained script of one step (exactly what runs and what --emit prints). */
export function psStep(spec: PsStepSpec): string {
  const { functions, call, params } = psStepParts(spec);
  return buildScript({
    name: spec.name,
    summary: spec.summary,
    params,
    functions: functions.map((f) => f.text).join('\n\n'),
    body: call,
    ...(spec.runsOn ? { runsOn: spec.runsOn } : {}),
    ...(spec.readOnly !== undefined ? { readOnly: spec.readOnly } : {}),
  });
}
