// Generated PowerShell: the one quoting function, value rendering, the script builder and the
// result extractor. Every value that reaches PowerShell passes through psQuote (strings) or
// psValue (everything else, which ends in psQuote for strings). Nothing else builds PS text from
// user input.

/** The five characters PowerShell treats as a single quote inside a verbatim string. */
import { UsageError } from './errors.ts';

const SINGLE_QUOTES = /['\u2018\u2019\u201a\u201b]/g;

/**
 * Turn any string into a PowerShell single-quoted (verbatim) literal. Inside '...' PowerShell
 * expands nothing ($, `, $( ) are plain text); the only special characters are the five single
 * quotes, each of which is escaped by doubling it (as Ansible's powershell shell plugin does).
 */
export function psQuote(value: string): string {
  // NUL cannot travel in a script (parsers and Run Command treat it as end of text); no valid
  // host, path or name contains it, so refuse rather than emit something that parses differently.
  if (value.includes('\0')) throw new UsageError('a value contains a NUL character, which cannot be passed to PowerShell');
  return `'${value.replace(SINGLE_QUOTES, (q) => q + q)}'`;
}

/**
 * Decode a verbatim literal by PowerShell's own rule (used by tests and by our own sanity check):
 * any of the five quotes doubled is one character; a lone one ends the string.
 * Returns null when the text is not exactly one well-formed literal.
 */
export function psUnquote(literal: string): string | null {
  const isQ = (c: string) => /['\u2018\u2019\u201a\u201b]/.test(c);
  if (literal.length < 2 || !isQ(literal[0]!)) return null;
  let out = '';
  for (let i = 1; i < literal.length; i++) {
    const c = literal[i]!;
    if (!isQ(c)) {
      out += c;
      continue;
    }
    const next = literal[i + 1];
    if (next !== undefined && isQ(next)) {
      out += c;
      i++;
      continue;
    }
    return i === literal.length - 1 ? out : null; // a lone quote must be the closing one
  }
  return null; // never closed
}

export type PsValue = string | number | boolean | null | PsValue[] | { [key: string]: PsValue };

const NON_ASCII = /[^\x00-\x7f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * A string as a PowerShell expression that keeps the script pure ASCII. Windows PowerShell 5.1
 * reads a saved .ps1 without a byte-order mark as ANSI, so a literal 'Conexión' would arrive
 * mangled: a string with any non-ASCII character travels as base64 of its UTF-8 and is decoded
 * when the script runs (base64 is letters, digits, + / =, so it needs no quoting). An ASCII string
 * is a plain psQuote literal, so scripts without such values do not change.
 */
function psString(value: string): string {
  if (!NON_ASCII.test(value)) return psQuote(value);
  if (value.includes('\0')) throw new UsageError('a value contains a NUL character, which cannot be passed to PowerShell');
  // A lone surrogate has no UTF-8 form (Buffer would turn it into U+FFFD): refuse, never alter.
  if (LONE_SURROGATE.test(value)) throw new UsageError('a value is not valid Unicode text (it contains a lone surrogate), so it cannot be passed to PowerShell');
  const b64 = Buffer.from(value, 'utf8').toString('base64');
  return `([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('${b64}')))`;
}

/** A hash-table key: our own names, never user input, so they must be ASCII already. */
function psKey(key: string): string {
  if (NON_ASCII.test(key)) throw new TypeError(`a PowerShell hash-table key must be ASCII: ${JSON.stringify(key)}`);
  return psQuote(key);
}

/**
 * Render a JS value as a PowerShell expression. Strings go through psQuote, or, when they hold
 * any non-ASCII character, through a base64-of-UTF-8 decoding expression: the result is pure ASCII.
 */
export function psValue(v: PsValue): string {
  if (v === null) return '$null';
  if (typeof v === 'boolean') return v ? '$true' : '$false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`not a finite number: ${v}`);
    return Number.isInteger(v) ? String(v) : v.toString();
  }
  if (typeof v === 'string') return psString(v);
  if (Array.isArray(v)) return `@(${v.map(psValue).join(', ')})`;
  const entries = Object.entries(v).map(([k, x]) => `${psKey(k)} = ${psValue(x)}`);
  return `[ordered]@{ ${entries.join('; ')} }`;
}

/** A PowerShell variable name we generate ourselves (never user input). */
function psVarName(name: string): string {
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) throw new TypeError(`bad parameter name: ${name}`);
  return name;
}

export const RESULT_BEGIN = '##rdpfix-result-begin##';
export const RESULT_END = '##rdpfix-result-end##';

export interface ScriptSpec {
  /** Step name, e.g. 'toggle-nla'; appears in the header comment and the result. */
  name: string;
  /** One-line purpose for the header comment. */
  summary: string;
  /** Values bound to $P.<name> before the body runs. */
  params: Record<string, PsValue>;
  /**
   * The step body: PowerShell that defines what it needs and assigns `$Result` (an ordered
   * hashtable). It may read `$P.Name` for every parameter and `$P.DryRun`.
   */
  body: string;
  /**
   * Function definitions placed before the body at the top level, verbatim (not indented, so a
   * here-string's terminator stays at column 0): what lib/ps-loader.ts includes from scripts/ps/.
   */
  functions?: string;
  /** Where it runs: the RDP server (default) or the Windows client where mstsc runs. */
  runsOn?: 'server' | 'client';
  /**
   * For a step that changes no setting: what the header says instead of where a change's backup is
   * (e.g. 'It changes nothing.'). Absent: the step may change something and records its backup.
   */
  readOnly?: string;
}

/**
 * Build a complete, self-contained script: prologue, parameters, body, and an epilogue that writes
 * exactly one compact JSON line between fixed markers (so banners, warnings and progress on a noisy
 * host never break parsing). The text is identical on every channel; --emit prints it verbatim.
 */
export function buildScript(spec: ScriptSpec): string {
  const params = Object.entries(spec.params)
    .map(([k, v]) => `    ${psVarName(k)} = ${psValue(v)}`)
    .join('\n');
  // Not indented: a here-string's closing '@ must stay at column 0.
  const body = spec.body.replace(/\s+$/, '');
  const where = spec.runsOn === 'client'
    ? `# Generated by rdpfix. Run it in an elevated Windows PowerShell 5.1+ console on the Windows client
# (where mstsc runs). It prints one JSON result between two marker lines.`
    : `# Generated by rdpfix. Run it in an elevated Windows PowerShell 5.1+ console on the server, or paste
# it into Azure Run command (RunPowerShellScript). It prints one JSON result between two marker lines.`;
  // A dry run changes nothing whatever the step: no backup to point at.
  const readOnly = spec.readOnly ?? (spec.params.DryRun === true ? 'A dry run: it changes nothing and reports what it would change.' : undefined);
  const after = readOnly !== undefined
    ? `# ${readOnly.replace(/[\r\n]+/g, ' ')}`
    : `# A change made by running this script yourself is not in your workstation's rdpfix journal: the
# last lines say where the backup is and the command that restores it.`;
  const text = `# rdpfix ${spec.name}: ${spec.summary.replace(/[\r\n]+/g, ' ')}
${where}
${after}
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$ProgressPreference = 'SilentlyContinue'
$P = [ordered]@{
${params}
}
$Result = [ordered]@{ step = ${psQuote(spec.name)}; status = 'failed' }
${spec.functions ? `${spec.functions.replace(/\s+$/, '')}
` : ''}try {
${body}
} catch {
    $Result = [ordered]@{
        step = ${psQuote(spec.name)}
        status = 'failed'
        error = $_.Exception.Message
        at = [string]$_.InvocationInfo.PositionMessage
    }
}
$Json = $Result | ConvertTo-Json -Compress -Depth 8
Write-Output ${psQuote(RESULT_BEGIN)}
Write-Output $Json
Write-Output ${psQuote(RESULT_END)}
if ($Result.Contains('backup') -and $Result['backup']) {
    Write-Output ('rdpfix: backup on this ${spec.runsOn === 'client' ? 'machine' : 'server'}: {0}' -f $Result['backup'])
}
if ($Result.Contains('restore') -and $Result['restore']) {
    foreach ($RestoreLine in @($Result['restore'])) { Write-Output ('rdpfix: to restore it, run: {0}' -f $RestoreLine) }
}
if ($Result.Contains('record') -and $Result['record']) {
    Write-Output ('rdpfix: this change is recorded on this ${spec.runsOn === 'client' ? 'machine' : 'server'} as {0} (record.json next to the backup); undo it from any workstation with: npx tsx scripts/undo.ts --target <CHANNEL to this ${spec.runsOn === 'client' ? 'machine' : 'server'}> --from-target {0} --yes' -f $Result['record'])
}
`;
  // Values are ASCII by construction (psValue); the rest is our own text.
  return assertAscii(text, `generated script ${spec.name}`);
}

/**
 * Refuse a script that is not pure ASCII: Windows PowerShell 5.1 reads a saved .ps1 without a
 * byte-order mark as ANSI, so a stray character (a typographic dash in a comment) would be mangled.
 */
export function assertAscii(text: string, what: string): string {
  const bad = NON_ASCII.exec(text);
  if (bad) {
    const line = text.slice(0, bad.index).split('\n').length;
    throw new TypeError(`${what} is not pure ASCII: U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} on line ${line}`);
  }
  return text;
}

/**
 * Find the JSON result in whatever a channel printed (noisy banners, CLIXML progress, Azure's
 * "[stdout]" framing). The last complete begin/end pair wins. Throws when none is found.
 */
export function extractResult<T = Record<string, unknown>>(output: string): T {
  const end = output.lastIndexOf(RESULT_END);
  const begin = end < 0 ? -1 : output.lastIndexOf(RESULT_BEGIN, end);
  if (begin < 0 || end < 0) {
    throw new Error('no rdpfix result in the output (the script did not finish, or the output was cut off)');
  }
  const json = output.slice(begin + RESULT_BEGIN.length, end).trim();
  return JSON.parse(json) as T;
}

/** -EncodedCommand takes base64 of UTF-16LE. */
export function encodeCommand(script: string): string {
  return Buffer.from(script, 'utf16le').toString('base64');
}

/**
 * One generated script of a representative mode/options: test/examples/<script>.ts exports
 * `examples(): PsExample[]`; test/generated-scripts.test.ts parses each with the real grammar and
 * compares what it decides with test/golden/<script>/<label>.golden.
 */
export interface PsExample {
  label: string;
  script: string;
}
