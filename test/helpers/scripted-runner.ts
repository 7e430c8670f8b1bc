// A channel stand-in for the server scripts' tests: it records every script it is given and
// answers with the next recorded result, in order (one answer per round trip).
import type { Runner } from '../../scripts/lib/server-step.ts';

export function scripted(...answers: unknown[]): Runner & { scripts: string[] } {
  const scripts: string[] = [];
  const run = (async (_t, script) => {
    scripts.push(script);
    if (!answers.length) throw new Error('no more scripted answers');
    return answers.shift();
  }) as Runner & { scripts: string[] };
  run.scripts = scripts;
  return run;
}
