// The hosts file that diagnose --hosts and run-recipe --hosts read: one `HOST[:PORT] [TARGET]` per
// line, `#` starts a comment. One parser, so a file that works for one works for the other.
import { readFileSync } from 'node:fs';
import { EnvError, UsageError } from './errors.ts';
import { validateHost, validateLocalPath, type HostPort } from './validate.ts';

export interface HostsLine extends HostPort {
  /** The optional second column (a run-recipe channel); validated by the caller that uses it. */
  target?: string;
  /** 1-based line number in the file, for messages and output. */
  line: number;
}

export function parseHostsFile(text: string, file: string): HostsLine[] {
  const out: HostsLine[] = [];
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
    out.push({ ...hp, ...(target !== undefined ? { target } : {}), line: i + 1 });
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
