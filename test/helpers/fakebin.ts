// Small fake executables (pwsh, az, ssh) on PATH that record their argv and stdin and answer with
// recorded outputs. They test our process plumbing, not Windows.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeBin {
  dir: string;
  /** Answer for a program: stdout text and exit code. */
  answer(name: string, stdout: string, code?: number): void;
  argv(name: string): string[];
  stdin(name: string): string;
  /** For az: the contents of the file passed as --scripts @FILE, copied at call time. */
  scriptFile(name: string): string;
  /** Put the fakes first on PATH; returns a restore function. */
  install(): () => void;
  remove(): void;
}

export function fakeBin(names: string[]): FakeBin {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-fake-'));
  for (const n of names) {
    // argv is written NUL-separated so arguments with newlines survive; an @FILE argument's file
    // is copied because the channel deletes it afterwards.
    writeFileSync(
      join(dir, n),
      `#!/bin/bash
printf '%s\\0' "$@" > "${dir}/${n}.argv"
cat > "${dir}/${n}.stdin"
for a in "$@"; do case "$a" in @*) cp "\${a#@}" "${dir}/${n}.file" ;; esac; done
[ -f "${dir}/${n}.out" ] && cat "${dir}/${n}.out"
exit $(cat "${dir}/${n}.code" 2>/dev/null || echo 0)
`,
    );
    chmodSync(join(dir, n), 0o755);
  }
  return {
    dir,
    answer(name, stdout, code = 0) {
      writeFileSync(join(dir, `${name}.out`), stdout);
      writeFileSync(join(dir, `${name}.code`), String(code));
    },
    argv: (name) => readFileSync(join(dir, `${name}.argv`), 'utf8').split('\0').slice(0, -1),
    stdin: (name) => readFileSync(join(dir, `${name}.stdin`), 'utf8'),
    scriptFile: (name) => readFileSync(join(dir, `${name}.file`), 'utf8'),
    install() {
      const old = process.env.PATH;
      process.env.PATH = `${dir}:${old}`;
      return () => {
        process.env.PATH = old;
      };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
