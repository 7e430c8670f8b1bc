// Find an executable: the one PATH lookup every script uses (channels, the MSS relay, the route and
// MTU helpers). PATHEXT-aware on Windows; extra folders (e.g. sbin, which a non-login PATH lacks)
// are searched after PATH.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export function findProgram(name: string, extraDirs: string[] = []): string | null {
  const win = process.platform === 'win32';
  const exts = win && !/\.[a-z0-9]+$/i.test(name) ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').map((e) => e.toLowerCase()) : [''];
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = join(dir, name + ext);
      try {
        accessSync(p, win ? constants.F_OK : constants.X_OK);
        return p;
      } catch {
        // not here, keep looking
      }
    }
  }
  return null;
}
