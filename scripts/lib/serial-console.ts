// The Azure Serial Console form of a generated script (`--emit --serial-console`). The Serial Console's
// PowerShell (SAC: `cmd`, then `powershell`) takes at most 2,048 characters a paste, and Microsoft says
// pasting there can double repeated characters unless PSReadLine is removed first; the scripts are
// 4-61 KB. So the SAME script --emit prints travels as lines of at most 2,000 characters:
//   1. a comment, then `Remove-Module PSReadLine -ErrorAction SilentlyContinue`;
//   2. the setup: the functions of scripts/ps/serial-console.ps1 (and what they reach: the backup root's
//      checks and the boundary's New-RdpProtectedDirectory, byte for byte, composed by the loader) as
//      GZip+base64 in $RdpSerialSetup, then one line that checks their SHA-256, defines them and creates
//      C:\ProgramData\rdpfix\serial protected (SYSTEM and Administrators only) before anything is written;
//   3. one line per chunk of the script's GZip+base64 text: Add-RdpSerialChunk checks the chunk against its
//      own hash (a damaged paste is refused at once) and appends it, numbered, to the script's file there;
//   4. the last line: Invoke-RdpSerialScript rebuilds the script, checks every chunk and the SHA-256 of the
//      whole (of the exact --emit text) and only then runs it in a child PowerShell; otherwise it names the
//      chunk numbers that are missing, altered, pasted twice with different content or not this script's.
// Values reach the pasted lines only through psQuote/psValue (lib/ps.ts); the lines are pure ASCII.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { UsageError } from './errors.ts';
import { PS_DIR, reachableFunctions, resolvePsFiles } from './ps-loader.ts';
import { assertAscii, psQuote, psValue } from './ps.ts';

/** No printed line is longer than this (the Serial Console takes 2,048 characters a paste). */
export const SERIAL_LINE_MAX = 2000;

/** The functions the pasted lines call; the loader adds what they reach. */
export const SERIAL_ENTRIES = ['Initialize-RdpSerialFolder', 'Add-RdpSerialChunk', 'Invoke-RdpSerialScript'];

export interface SerialForm {
  /** Every line to paste, in order (comments included), each at most SERIAL_LINE_MAX characters. */
  lines: string[];
  /** The lines joined, each ending in a newline: what --emit --serial-console prints. */
  text: string;
  /** rdpfix-<16 hex of the script's SHA-256>: the name of its files on the server. */
  name: string;
  /** SHA-256 of the exact --emit text (upper-case hex, as Get-FileHash prints it). */
  sha256: string;
  /** Bytes of the --emit text. */
  scriptBytes: number;
  /** Characters of its GZip+base64 form. */
  payloadChars: number;
  /** How many chunk lines carry it. */
  chunks: number;
  /** The chunk lines alone (also in `lines`), chunk 1 first. */
  chunkLines: string[];
  /** The line that rebuilds, checks and runs the script (the last line). */
  runLine: string;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex').toUpperCase();
/** 16 hex digits of a chunk's SHA-256: enough to tell a damaged or foreign chunk; the whole script's full SHA-256 decides. */
const chunkHash = (text: string) => sha256(text).slice(0, 16);
const gzipBase64 = (b: Buffer) => gzipSync(b, { level: 9 }).toString('base64');

/** Split a base64 text so that `line(i, n, part)` stays within the limit for every part. */
function split(text: string, line: (i: number, n: number, part: string) => string): string[] {
  // A line's overhead grows with the digits of its number and of the count, so the longest one is
  // line n of n: find the count whose parts fit that line.
  let n = 1;
  let size = 0;
  for (;;) {
    size = SERIAL_LINE_MAX - line(n, n, '').length;
    if (size < 100) throw new TypeError('a serial console line has no room for its chunk');
    const m = Math.max(1, Math.ceil(text.length / size));
    if (m <= n) break;
    n = m;
  }
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
  return parts.length ? parts : [''];
}

let setupCache: { text: string; sha256: string; b64: string } | null = null;

/** The setup the console defines: serial-console.ps1's functions and all they reach, as the loader composes them. */
export function serialSetup(dir = PS_DIR): { text: string; sha256: string; b64: string } {
  if (setupCache && dir === PS_DIR) return setupCache;
  const files = resolvePsFiles(['windows', 'serial-console'], dir);
  const text = assertAscii(`${reachableFunctions(files, SERIAL_ENTRIES).map((f) => f.text).join('\n\n')}\n`, 'the serial console setup');
  const out = { text, sha256: sha256(text), b64: gzipBase64(Buffer.from(text, 'ascii')) };
  if (dir === PS_DIR) setupCache = out;
  return out;
}

/**
 * The Serial Console paste form of one generated script: `script` is exactly what --emit prints
 * (pure ASCII, as buildScript makes it); the rebuilt file on the server is byte-identical to it.
 */
export function serialConsoleForm(script: string, what = 'the script'): SerialForm {
  assertAscii(script, what);
  const bytes = Buffer.from(script, 'ascii');
  const hash = sha256(bytes);
  const name = `rdpfix-${hash.slice(0, 16).toLowerCase()}`;
  const payload = gzipBase64(bytes);
  const setup = serialSetup();

  const setupParts = split(setup.b64, (_i, _n, part) => `$RdpSerialSetup += ${psQuote(part)}`);
  const setupLines = setupParts.map((part, i) => `$RdpSerialSetup ${i === 0 ? '=' : '+='} ${psQuote(part)}`);
  // One line: decompress the setup, check its SHA-256 (a damaged paste defines nothing), define its
  // functions in this session, and create the protected folder before any chunk is written.
  const loadLine = [
    'try { $RdpSerialIn = New-Object -TypeName System.IO.MemoryStream -ArgumentList (, [System.Convert]::FromBase64String($RdpSerialSetup))',
    '$RdpSerialZip = New-Object -TypeName System.IO.Compression.GZipStream -ArgumentList $RdpSerialIn, ([System.IO.Compression.CompressionMode]::Decompress)',
    '$RdpSerialOut = New-Object -TypeName System.IO.MemoryStream',
    '$RdpSerialZip.CopyTo($RdpSerialOut)',
    '$RdpSerialZip.Dispose()',
    '$RdpSerialOut.Position = 0',
    `$RdpSerialOk = (Get-FileHash -InputStream $RdpSerialOut -Algorithm SHA256).Hash -eq ${psQuote(setup.sha256)} } catch { $RdpSerialOk = $false }`,
    `if (-not $RdpSerialOk) { throw ${psQuote(`rdpfix: the setup lines arrived altered: paste the ${setupLines.length === 1 ? 'line' : 'lines'} starting $RdpSerialSetup again, then this line`)} }`,
    '. ([scriptblock]::Create([System.Text.Encoding]::ASCII.GetString($RdpSerialOut.ToArray())))',
    `Write-Output ('rdpfix: setup checked; chunks go to {0}' -f (Initialize-RdpSerialFolder))`,
  ].join('; ');

  const chunkLine = (i: number, n: number, part: string) =>
    `Add-RdpSerialChunk -Name ${psQuote(name)} -Number ${psValue(i)} -Count ${psValue(n)} -Sha256 ${psQuote(part ? chunkHash(part) : '0'.repeat(16))} -Data ${psQuote(part)}`;
  const parts = split(payload, chunkLine);
  const chunkLines = parts.map((p, i) => chunkLine(i + 1, parts.length, p));
  const runLine = `Invoke-RdpSerialScript -Name ${psQuote(name)} -Sha256 ${psQuote(hash)} -Chunk ${psValue(parts.map(chunkHash))}`;

  const lines = [
    `# rdpfix serial console form of ${what.replace(/[\r\n]+/g, ' ')} (${bytes.length} bytes, SHA-256 ${hash}): paste each line on its own, in order, into PowerShell on the Azure Serial Console (SAC: cmd, then powershell, as an administrator); lines starting with # may be left out.`,
    'Remove-Module PSReadLine -ErrorAction SilentlyContinue',
    `# Setup (${setupLines.length + 1} lines): rdpfix's functions for this paste, checked by their SHA-256; the last setup line creates ${'C:\\ProgramData\\rdpfix\\serial'} (SYSTEM and Administrators only) before anything is written. Paste it again after a new PowerShell.`,
    ...setupLines,
    loadLine,
    `# The script in ${chunkLines.length} chunks; each is checked as it is pasted (paste a refused one again; pasting one twice is harmless).`,
    ...chunkLines,
    '# Last: rebuild the script, check every chunk and its SHA-256, and only then run it in a child PowerShell (-NoProfile -ExecutionPolicy Bypass -File): the script may call exit, which would close this console\'s PowerShell; its output and exit code come back here. A wrong chunk: it names the chunk numbers and runs nothing.',
    runLine,
  ];
  for (const [i, l] of lines.entries()) {
    if (l.length > SERIAL_LINE_MAX) throw new TypeError(`serial console line ${i + 1} has ${l.length} characters (at most ${SERIAL_LINE_MAX})`);
    if (/[\r\n]/.test(l)) throw new TypeError(`serial console line ${i + 1} holds a line break`);
  }
  const text = assertAscii(`${lines.join('\n')}\n`, 'the serial console form');
  return { lines, text, name, sha256: hash, scriptBytes: bytes.length, payloadChars: payload.length, chunks: chunkLines.length, chunkLines, runLine };
}

/** The option as every script that prints a paste-able script declares it. */
export const SERIAL_CONSOLE_OPTION = {
  type: 'boolean',
  default: false,
  describe: 'with --emit: print the script as Azure Serial Console lines (each at most 2,000 characters: the script compressed in numbered, checked chunks, rebuilt and verified by SHA-256 on the server before it runs)',
} as const;

/** --serial-console is a form of --emit, and its output is lines to paste, never JSON. */
export function checkSerialConsoleUsage(o: { serialConsole: boolean; emit: boolean; json: boolean }): void {
  if (!o.serialConsole) return;
  if (!o.emit) throw new UsageError('--serial-console goes with --emit: it prints the script as lines to paste into the Azure Serial Console; nothing is run from here');
  if (o.json) throw new UsageError('--serial-console prints lines to paste into the Azure Serial Console, not JSON: leave out --json');
}
