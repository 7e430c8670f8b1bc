// The hosts file that diagnose --hosts and run-recipe --hosts read: one `HOST[:PORT] [TARGET]` per
// line, `#` starts a comment. One parser, so a file that works for one works for the other.
// A host listed twice would be probed twice, or restarted twice at once by a fleet run: the same
// endpoint (host compared without case or trailing dot, the port defaulting to 3389) on two lines
// with the same target is merged with a warning; with different targets it is refused, naming
// both lines.
import { readFileSync } from 'node:fs';
import { EnvError, UsageError } from './errors.ts';
import { validateHost, validateLocalPath, type HostPort } from './validate.ts';

export interface HostsLine extends HostPort {
  /** The optional second column (a run-recipe channel); validated by the caller that uses it. */
  target?: string;
  /** 1-based line number in the file, for messages and output. */
  line: number;
}

/** 2001:DB8:0::1 -> 2001:db8::1 (the WHATWG URL parser's canonical form); a zone id is kept as typed. */
function canonicalIPv6(a: string): string {
  try {
    return new URL(`http://[${a}]/`).hostname.slice(1, -1);
  } catch {
    return a.toLowerCase();
  }
}

/** The endpoint a line names, as a key: `vm1.contoso.com:3389` for VM1.contoso.com. and vm1.contoso.com:3389. */
export function endpointKey(h: { host: string; port?: number; family: 0 | 4 | 6 }, defaultPort = 3389): string {
  const host = h.family === 6 ? `[${canonicalIPv6(h.host)}]` : h.host.toLowerCase().replace(/\.$/, '');
  return `${host}:${h.port ?? defaultPort}`;
}

export function parseHostsFile(text: string, file: string, warn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`)): HostsLine[] {
  const out: HostsLine[] = [];
  const seen = new Map<string, HostsLine & { text: string }>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [h, target, extra] = line.split(/\s+/);
    if (extra !== undefined) throw new UsageError(`${file}:${i + 1}: expected HOST[:PORT] [TARGET], got ${JSON.stringify(raw.trim())}`);
    let hp: HostPort;
    try {
      hp = validateHost(h!);
    } catch (e) {
      throw new UsageError(`${file}:${i + 1}: ${(e as Error).message}`);
    }
    const entry = { ...hp, ...(target !== undefined ? { target } : {}), line: i + 1 };
    const key = endpointKey(hp);
    const first = seen.get(key);
    if (first) {
      const same = (first.target ?? '').toLowerCase() === (target ?? '').toLowerCase();
      if (!same) {
        throw new UsageError(
          `${file}:${i + 1}: ${JSON.stringify(h)} is the same host as ${file}:${first.line} (${JSON.stringify(first.text)}) with a different target (${target ?? 'none'} vs ${first.target ?? 'none'})`,
          'list each host once, with the one target that reaches it',
        );
      }
      warn(`${file}:${i + 1}: ${JSON.stringify(h)} is the same host as ${file}:${first.line} (${key}); using it once`);
      return;
    }
    seen.set(key, { ...entry, text: h! });
    out.push(entry);
  });
  if (!out.length) throw new UsageError(`${file}: no hosts`, 'one HOST[:PORT] [TARGET] per line; # starts a comment');
  return out;
}

/** Read and parse a hosts file named on the command line. */
export function readHostsFile(path: string, flag = '--hosts'): HostsLine[] {
  const file = validateLocalPath(path, flag);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EnvError(`cannot read hosts file ${JSON.stringify(file)}`);
  }
  return parseHostsFile(text, file);
}
