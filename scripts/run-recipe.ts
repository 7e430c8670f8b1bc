// run-recipe.ts: chain rdpfix scripts into a scenario fix sequence (recipes/*.yaml) for one host or
// a fleet. Use it once diagnose has named the cause (diagnose prints the recipe to run, and
// `diagnose --fix` calls this runner). It prints the plan, asks before changing anything, runs the
// steps in order, stops at the first failure (or as soon as a check says the host is healthy, so
// the least drastic fix that works is the one that stays), and journals the run so that `--resume`
// continues after a crash and `undo.ts --last --yes` (or `--rollback`) undoes every change it made.
import { describeTarget, parseTarget, TARGET_HELP } from './lib/channels.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { fleetOnlyError, fleetOptions, fleetSummaryReport, formatSummary, reportFleet } from './lib/fleet.ts';
import { readHostsFile } from './lib/hosts.ts';
import { chalk, confirm, printJson } from './lib/output.ts';
import { emitRecipe } from './lib/recipe-emit.ts';
import { checkSerialConsoleUsage, SERIAL_CONSOLE_OPTION, serialConsoleForm } from './lib/serial-console.ts';
import { freshenBundles, listRecipes, loadRecipe } from './lib/recipe.ts';
import { report } from './lib/report.ts';
import { changesState, findResumable, finishRun, fleetHosts, humanHooks, planLines, recap, runFleet, runRecipe, runReport, runWithPlan } from './lib/runner.ts';
import { formatHostPort, validateHost, validateInt, validateLocalPath } from './lib/validate.ts';

export async function main(argv: string[]): Promise<number> {
  const recipes = listRecipes();
  const args = await makeCli(argv, 'run-recipe')
    .strict(false)
    .strictOptions(true) // one positional (the recipe), every option checked
    .usage(`$0 RECIPE --host HOST[:PORT] [--target CHANNEL] [options]\n\nRun a scenario fix sequence: plan, confirm, run, verify, roll back, resume.\nRecipes: ${recipes.join(', ')}`)
    .option('host', { type: 'string', describe: 'the RDP host (client-side checks probe it)' })
    .option('hosts', { type: 'string', describe: 'fleet: file with one HOST[:PORT] [TARGET] per line (# comments)' })
    .option('parallel', { type: 'number', default: 16, describe: 'fleet: hosts handled at once' })
    .option('target', { type: 'string', default: 'local', describe: `${TARGET_HELP}; in fleet mode {host} is replaced by each host` })
    .option('param', { type: 'array', string: true, default: [] as string[], describe: 'recipe parameter NAME=VALUE (repeatable)' })
    .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask for confirmation' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'run every step in inspect-only mode against the real targets' })
    .option('rollback', { type: 'boolean', default: false, describe: 'on failure, undo every change this run made (newest first)' })
    .option('resume', { type: 'string', describe: 'continue an interrupted run after its last finished step (RUN_ID, or empty for the newest); a step interrupted in the middle is first reconciled with the target\'s record and not run again if it completed there' })
    .option('emit', { type: 'boolean', default: false, describe: 'print the PowerShell of one stage of the server-side steps, for pasting; runs nothing' })
    .option('serial-console', SERIAL_CONSOLE_OPTION)
    .option('stage', { type: 'number', describe: 'with --emit: which stage to print (1 = the least drastic fix; each stage ends at a check that may stop the recipe)' })
    .option('list', { type: 'boolean', default: false, describe: 'list the recipes' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan and every step result as JSON' })
    .options(fleetOptions('result'))
    .option('journal', { type: 'string', describe: 'journal folder (default ~/.rdpfix/journal)' })
    .example('$0 azure-vm-cert --host vm --target azure://S/RG/VM', 'fix an Azure VM that drops RDP at once')
    .example('$0 vpn-mtu --host vm1.contoso.com --dry-run', 'see what the VPN MTU fix would change')
    .example('$0 azure-vm-cert --host 10.0.0.4 --emit > fix.ps1', 'stage 1 of the fix, to paste on the server')
    .example('$0 service-down --hosts vms --target winrm://{host}', 'a fleet (vms: one HOST[:PORT] [TARGET] a line)')
    .example('$0 --resume', 'continue the newest interrupted run')
    .epilog('Undo everything the last run changed: npx tsx scripts/undo.ts --last --yes\nA pasted script is not in the journal: it prints its backups and the commands that restore them.\nRDPFIX_SCRIPTS_DIR=DIR runs the step scripts found in DIR instead of scripts/ (another checkout, or stand-ins).')
    .parseAsync();

  const json = args.json;
  const notFleet = args.hosts === undefined || args.emit || args.list || args.resume !== undefined ? fleetOnlyError(args, argv, '--hosts FILE, without --emit, --list or --resume') : null;
  if (notFleet) throw new UsageError(notFleet);
  if (args.journal !== undefined) validateLocalPath(args.journal, '--journal');
  if (args.list) {
    const docs = recipes.map((r) => loadRecipe(r)).map((r) => ({ name: r.name, summary: r.summary, fixes: r.fixes, steps: r.steps.length }));
    if (json) printJson({ ...report({ status: 'ok', summary: `${docs.length} recipes: ${docs.map((d) => d.name).join(', ')}` }), recipes: docs });
    else for (const d of docs) process.stdout.write(`${chalk.bold(d.name.padEnd(18))} ${d.summary}\n${' '.repeat(19)}${chalk.dim(`fixes: ${d.fixes.join(', ')}`)}\n`);
    return 0;
  }

  const params: Record<string, string> = {};
  for (const p of args.param as string[]) {
    const m = /^([a-z][a-z0-9_]*)=(.*)$/.exec(p);
    if (!m) throw new UsageError(`invalid --param ${JSON.stringify(p)}: expected NAME=VALUE`);
    params[m[1]!] = m[2]!;
  }

  // --emit prints and never runs anything, in any mode.
  checkSerialConsoleUsage({ serialConsole: args['serial-console'], emit: args.emit, json });
  if (args.emit) {
    for (const [flag, given] of [['--resume', args.resume !== undefined], ['--rollback', args.rollback], ['--json', json]] as const) {
      if (given) throw new UsageError(`--emit prints a script and runs nothing: it cannot be combined with ${flag}`);
    }
  } else if (args.stage !== undefined) {
    throw new UsageError('--stage goes with --emit');
  }

  // Resume: everything comes from the saved run.
  if (args.resume !== undefined) {
    const saved = findResumable(args.resume === '' ? true : args.resume, args.journal);
    const recipe = loadRecipe(saved.recipeFile);
    if (!json) process.stdout.write(`Resuming run ${saved.runId} (${saved.steps.length} of ${recipe.steps.length} steps done)\n`);
    return finishRun(recipe, await runRecipe(recipe, { host: saved.host, target: saved.target, dryRun: saved.dryRun, params: saved.params, resume: saved, journal: args.journal, ...humanHooks(json), onReconcile: (found) => { if (!json) for (const r of found) process.stderr.write(`reconciled ${r.script} on ${r.target}: ${r.state} (${r.detail})\n`); } }), args.rollback, json, args.journal);
  }

  if (args._.length > 1) throw new UsageError(`expected one recipe, got ${args._.map((a) => JSON.stringify(String(a))).join(' ')}`);
  const name = args._[0] !== undefined ? String(args._[0]) : undefined;
  if (!name) throw new UsageError(`which recipe? expected one of ${recipes.join(', ')}`);
  const recipe = loadRecipe(name);
  for (const [k, v] of Object.entries(params)) {
    const p = recipe.params[k];
    if (!p) throw new UsageError(`recipe ${recipe.name} has no parameter ${JSON.stringify(k)}${Object.keys(recipe.params).length ? `; it has ${Object.keys(recipe.params).join(', ')}` : ''}`);
    if (p.values && !p.values.includes(v)) throw new UsageError(`invalid --param ${k}=${JSON.stringify(v)}: expected one of ${p.values.join(', ')}`);
  }
  if (args.host !== undefined && args.hosts !== undefined) throw new UsageError('give either --host HOST or --hosts FILE, not both');

  if (args.emit) {
    const stage = args.stage === undefined ? 1 : validateInt(args.stage, '--stage', 1, 99);
    const common = { params, stage, dryRun: args['dry-run'] };
    // --serial-console: the same script as Azure Serial Console lines (lib/serial-console.ts).
    const paste = (script: string) => (args['serial-console'] ? serialConsoleForm(script, `stage ${stage} of the ${recipe.name} recipe${args['dry-run'] ? ' (dry run)' : ''}`).text : script);
    if (args.hosts !== undefined) {
      // Every host's server steps are the same script: one paste serves the fleet.
      const hosts = fleetHosts(readHostsFile(args.hosts), args.hosts, args.target);
      process.stdout.write(paste(await emitRecipe(recipe, { ...common, hostsFile: args.hosts })));
      process.stderr.write(`One script for the ${hosts.length} hosts in ${args.hosts}: it does not depend on the host. Nothing was run.\n`);
    } else {
      process.stdout.write(paste(await emitRecipe(recipe, { ...common, ...(args.host !== undefined ? { host: formatHostPort(validateHost(args.host, '--host')) } : {}) })));
    }
    return 0;
  }

  if (args.hosts !== undefined) {
    const file = args.hosts;
    const hosts = fleetHosts(readHostsFile(file), file, args.target);
    const parallel = validateInt(args.parallel, '--parallel', 1, 1024);
    const slowest = validateInt(args.slowest, '--slowest', 0, 100);
    if (!json) {
      process.stdout.write(planLines(recipe, `${hosts.length} hosts from ${file}`, args.target, args['dry-run']).join('\n') + '\n\n');
    }
    if (!args['dry-run'] && !args.yes && recipe.steps.some(changesState) && !(await confirm(`Run on ${hosts.length} hosts?`, 'this recipe changes state and needs confirmation: pass --yes (or --dry-run to inspect only)'))) return 1;
    freshenBundles(recipe.steps.map((s) => s.script));
    if (!json) process.stdout.write(`${'host'.padEnd(28)} ${'result'.padEnd(10)} recap\n`);
    // Each host's record is printed as its run ends and then dropped: only the summary's counts stay.
    const doc = await reportFleet({ total: hosts.length, slowest, label: recipe.name, progress: args.progress, isOk: (result) => result !== 'failed' }, (fleet) =>
      runFleet(recipe, hosts, parallel, { dryRun: args['dry-run'], params, journal: args.journal }, (r, h) => {
        fleet.add({ endpoint: r.host, cause: r.result ?? 'failed', ms: Date.parse(r.finished ?? r.started) - Date.parse(r.started), line: h.line });
        if (json) return printJson(runReport(r, undefined, args.journal));
        const last = r.steps.at(-1);
        fleet.print(`${r.host.padEnd(28)} ${(r.result === 'failed' ? chalk.red : chalk.green)((r.result ?? '').padEnd(10))} ${recap(r)}${r.result === 'failed' && last ? chalk.dim(`  ${last.name}: ${last.detail}`) : ''}`);
      }),
    );
    if (json) {
      if (args.summary) printJson(fleetSummaryReport(doc));
    } else {
      process.stdout.write(`\n${formatSummary(doc, () => null, { ok: 'ok', problem: 'failed' }).join('\n')}\n`);
    }
    return doc.ok === doc.hosts ? 0 : 1;
  }

  if (args.host === undefined) throw new UsageError('--host is required (the RDP host the checks probe), or --hosts FILE for a fleet');
  const host = formatHostPort(validateHost(args.host, '--host'));
  const target = describeTarget(parseTarget(args.target));
  return runWithPlan(recipe, { host, target, dryRun: args['dry-run'], yes: args.yes, json, rollback: args.rollback, params, ...(args.journal !== undefined ? { journal: args.journal } : {}) });
}

if (isMain(import.meta.url)) await runCli(main);
