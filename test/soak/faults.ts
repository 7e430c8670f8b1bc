// The full fault soak of issue 12 part 3 (not part of `npm test`: it runs for an hour or more):
// every mutating step that can run over ssh:// (test/lab/twin-ssh.ts STEPS) on the Windows twin
// behind a real sshd, with
//   - client SIGKILLs at random delays (default 200 in all): three in four inside the window in
//     which the remote script runs (measured per step on a plain run first), one in four anywhere
//     from the client's start to its end; alternately the whole process group (ssh dies with it,
//     as on Ctrl-C or a closed terminal) and node alone (its ssh child finishes the step);
//   - drops: the sshd session process killed, and the remote script's own process killed, at a
//     random point of the remote window;
//   - full disks: the backup disk with 0, 1, 2 pages of room.
// After each (runCase): unchanged, or changed with a backup and a target record; reconcile (when
// `undo --reconcile` exists) then undo --run restores the twin exactly; one record per run; a
// re-run after a completed change says ok. Every case is one JSON line in --out (kept even if the
// soak is stopped), and the totals per step and fault kind are printed at the end.
//
// Run (root, on the lab machine): npx tsx test/soak/faults.ts [--kills 200] [--drops 4]
//   [--full-disk 3] [--seed 1] [--out /tmp/rdpfix-faults.jsonl] [--only NAME] [--minutes M]
// --minutes stops starting new cases after M minutes (the totals say how many ran).
import { appendFileSync, writeFileSync } from 'node:fs';
import { cleanupStaleLab, createTopology } from '../lab/netns.ts';
import { cleanupStaleSshConfig } from '../lab/sshd.ts';
import { closeLab, hasReconcile, openLab, runCase, STEPS, type CaseResult, type Fault, type Lab, type StepCase } from '../lab/twin-ssh.ts';
import { rng } from '../helpers/fuzz.ts';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : dflt;
};
const kills = Number(opt('kills', '200'));
const drops = Number(opt('drops', '4'));
const fullDisk = Number(opt('full-disk', '3'));
const out = opt('out', '/tmp/rdpfix-faults.jsonl');
const only = opt('only', '');
const minutes = Number(opt('minutes', '0'));
const random = rng(Number(opt('seed', '1')));

cleanupStaleLab();
cleanupStaleSshConfig();
writeFileSync(out, '');
const t0 = Date.now();
const steps = STEPS.filter((s) => !only || s.name.includes(only));
const results: CaseResult[] = [];
let lab: Lab | undefined;

function log(r: CaseResult): void {
  results.push(r);
  appendFileSync(out, `${JSON.stringify(r)}\n`);
  const f = r.fault;
  console.log(`${results.length} ${((Date.now() - t0) / 60000).toFixed(1)}m | ${r.step} | ${f.kind}${f.delayMs !== undefined ? ` @${f.delayMs}` : ''}${f.group !== undefined ? (f.group ? ' group' : ' node') : ''}${f.roomPages !== undefined ? ` room ${f.roomPages}` : ''} | hit ${r.hit} | left ${r.left} | first ${r.firstRun.status ?? `exit ${r.firstRun.code} ${r.firstRun.signal ?? ''}`} | records ${r.records}[${r.recordPhases.join(',')}] | reconcile ${r.reconciled} | re-run ${r.rerun ?? '-'} | exact ${r.restoredExact} | ${r.problems.length ? `PROBLEMS: ${r.problems.join(' // ').replace(/\n/g, ' ; ')}` : 'ok'}`);
}

const timeUp = () => minutes > 0 && Date.now() - t0 > minutes * 60_000;

async function one(s: StepCase, f: Fault): Promise<void> {
  try {
    log(await runCase(lab!, s, f));
  } catch (e) {
    // The harness itself failed (not a product result): reported as such, and the lab rebuilt.
    console.log(`HARNESS ERROR ${s.name} ${JSON.stringify(f)}: ${(e as Error).stack}`);
    appendFileSync(out, `${JSON.stringify({ step: s.name, fault: f, harnessError: String((e as Error).message) })}\n`);
    await closeLab(lab).catch(() => undefined);
    lab = await openLab(createTopology);
  }
}

try {
  lab = await openLab(createTopology);
  console.log(`faults soak: ${steps.map((s) => s.name).join(', ')}; reconcile ${hasReconcile() ? 'available' : 'NOT available yet'}; out ${out}`);
  // A plain run per step: the baseline, and the windows the delays are drawn from.
  const windows = new Map<string, { total: number; from: number; length: number }>();
  for (const s of steps) {
    await one(s, { kind: 'none' });
    const r = results.at(-1);
    const from = r?.firstRun.remoteFrom ?? 3000;
    windows.set(s.name, { total: r?.firstRun.ms ?? 8000, from, length: Math.max(200, (r?.firstRun.remoteTo ?? from + 3000) - from) });
  }
  // The plan, interleaved across steps so a stopped soak still covers every step.
  const plan: [StepCase, Fault][] = [];
  const perStep = Math.ceil(kills / steps.length);
  for (let i = 0; i < perStep; i++) {
    for (const s of steps) {
      if (plan.filter(([, f]) => f.kind === 'client-kill').length >= kills) break;
      const w = windows.get(s.name)!;
      const delayMs = i % 4 === 3 ? Math.round(random() * w.total) : w.from + Math.round(random() * w.length);
      plan.push([s, { kind: 'client-kill', delayMs, group: i % 2 === 0 }]);
      if (i < drops) plan.push([s, { kind: i % 2 === 0 ? 'drop' : 'remote-kill', delayMs: Math.round(random() * w.length) }]);
      if (i < fullDisk) plan.push([s, { kind: 'full-disk', roomPages: i }]);
    }
  }
  for (const [s, f] of plan) {
    if (timeUp()) {
      console.log(`--minutes ${minutes} reached: ${plan.length - results.length + steps.length} planned cases not run`);
      break;
    }
    await one(s, f);
  }
} finally {
  await closeLab(lab).catch(() => undefined);
}

// Totals per step and fault kind.
const rows = new Map<string, { faults: number; hit: number; changed: number; checked: number; exact: number; problems: number }>();
for (const r of results) {
  const k = `${r.step} | ${r.fault.kind}`;
  const row = rows.get(k) ?? { faults: 0, hit: 0, changed: 0, checked: 0, exact: 0, problems: 0 };
  row.faults++;
  if (r.hit) row.hit++;
  if (r.left === 'changed') row.changed++;
  row.checked++;
  if (r.restoredExact) row.exact++;
  if (r.problems.length) row.problems++;
  rows.set(k, row);
}
console.log(`\nstep | fault | cases | fault hit a running step | left changed | states checked | restored exactly | with problems`);
for (const [k, v] of [...rows].sort()) console.log(`${k} | ${v.faults} | ${v.hit} | ${v.changed} | ${v.checked} | ${v.exact} | ${v.problems}`);
const tot = [...rows.values()].reduce((a, v) => ({ faults: a.faults + v.faults, exact: a.exact + v.exact, problems: a.problems + v.problems }), { faults: 0, exact: 0, problems: 0 });
console.log(`total: ${tot.faults} cases, ${tot.exact} restored exactly, ${tot.problems} with problems, ${((Date.now() - t0) / 60000).toFixed(1)} min; reconcile ${hasReconcile() ? 'available' : 'not available'}`);
process.exit(0);
