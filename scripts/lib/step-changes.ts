// One entry point from a changing step's raw result to the journal changes that step records after
// a normal run: the same builders the step scripts call (lib/certificate.ts regenChange,
// lib/machinekeys-step.ts clearChanges, lib/nla-step.ts nlaChanges, lib/udp-step.ts udpChange,
// lib/mtu-step.ts windowsMtuChange), so a change rebuilt later (undo --reconcile / --from-target
// from a target record, lib/target-record.ts; the Windows twin's undo, test/windows/emit.ts) is
// the change the step would have journaled, summary, before, after, backup and undo script alike.
import { describeTarget, parseTarget, type Target } from './channels.ts';
import { regenChange, type RestartRaw } from './certificate.ts';
import { clearChanges, type ClearRaw } from './machinekeys-step.ts';
import { windowsMtuChange } from './mtu-step.ts';
import { nlaChanges, type NlaRaw } from './nla-step.ts';
import { isoDates, type Change, type StepContext } from './server-step.ts';
import { DEFAULT_BACKUP_DIR as UDP_BACKUP_DIR, udpChange } from './udp-step.ts';
import { validateInterface, validateMtu, validateWindowsPath } from './validate.ts';

/** The steps that change a target and journal what they changed. */
export const MUTATING_STEPS = ['toggle-nla', 'restart-termserv', 'clear-machinekeys', 'disable-rdp-udp', 'lower-mtu'] as const;
export type MutatingStep = (typeof MUTATING_STEPS)[number];

export function isMutatingStep(v: unknown): v is MutatingStep {
  return typeof v === 'string' && (MUTATING_STEPS as readonly string[]).includes(v);
}

type Options = Record<string, unknown>;

function option<T extends 'number' | 'string' | 'boolean'>(o: Options, name: string, type: T, step: MutatingStep): (T extends 'number' ? number : T extends 'string' ? string : boolean) | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) throw new TypeError(`${step}: options.${name} must be a ${type}, not ${JSON.stringify(v)}`);
  return v as never;
}

/**
 * The journal changes `step` records for the raw result `raw` (the step script's JSON result, or a
 * target record's result), on the target of `ctx`. A dry run journals nothing: [] whenever
 * ctx.dryRun. `options` are the step's options as they were passed (its TypeScript options object,
 * or a target record's options); only these matter, and absent ones take the CLI defaults:
 *   restart-termserv   timeoutSeconds: the undo's wait for TermService and a certificate (absent: 60).
 *                      Nothing else: a change exists only when the result reports a certificate
 *                      removed or a pin removed (regenChange).
 *   clear-machinekeys  timeoutSeconds: as restart-termserv, for the regeneration's and the
 *                      --rename-folder's undo (absent: 60). The ACL repair needs no option.
 *   toggle-nla         mode: 'restore' journals nothing here (lib/undo.ts journals the undo a
 *                      --restore runs); absent, the result's own mode decides the same way. Every
 *                      other option (policy, forSeconds / expirySeconds, removeTask) is already in
 *                      the result (changed, task, taskRemoved): nlaChanges reads only the result.
 *   disable-rdp-udp    backupDir: the undo script's backup folder (absent: C:\ProgramData\rdpfix\backup).
 *                      target (a Target or --target text), when given, must be ctx.target: the change
 *                      names its target and the undo runs there. Only a 'changed' result journals.
 *   lower-mtu          interface and mtu (required: the set's own values; the result does not name
 *                      the MTU asked for); temporary (boolean) or, as a target record holds it, store
 *                      'active' | 'persistent' (absent: the result's store; neither: persistent);
 *                      origin ('set' | 'found', absent: 'found', the wider range) to check mtu;
 *                      backupDir (absent: C:\ProgramData\rdpfix\backup). lower-mtu runs only on this
 *                      machine, so ctx.target must be local. Only a 'changed' result journals.
 * raw is the result as the target returned it (PowerShell 5.1 dates are turned into ISO 8601 for
 * the server steps, as runStep does). An unknown step, a raw that is not an object, or an option
 * of the wrong type throws.
 */
export function stepChanges(step: MutatingStep, raw: unknown, ctx: StepContext, options: Options = {}): Change[] {
  if (!isMutatingStep(step)) throw new Error(`stepChanges: unknown step ${JSON.stringify(step)}; the steps that journal changes are ${MUTATING_STEPS.join(', ')}`);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new TypeError(`${step}: the raw result must be a JSON object, not ${JSON.stringify(raw)?.slice(0, 80)}`);
  if (!options || typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`${step}: options must be an object`);
  if (ctx.dryRun) return [];
  const r = raw as Record<string, unknown>;
  switch (step) {
    case 'restart-termserv': {
      const c = regenChange(isoDates(r) as RestartRaw, ctx, option(options, 'timeoutSeconds', 'number', step));
      return c ? [c] : [];
    }
    case 'clear-machinekeys': {
      const timeoutSeconds = option(options, 'timeoutSeconds', 'number', step);
      return clearChanges(isoDates(r) as ClearRaw, ctx, timeoutSeconds === undefined ? {} : { timeoutSeconds });
    }
    case 'toggle-nla': {
      const mode = option(options, 'mode', 'string', step) ?? r.mode;
      if (mode === 'restore') return [];
      return nlaChanges(isoDates(r) as NlaRaw, ctx);
    }
    case 'disable-rdp-udp': {
      const where = describeTarget(ctx.target);
      const given = options.target;
      if (given !== undefined && given !== null) {
        const t = typeof given === 'string' ? parseTarget(given) : (given as Target);
        if (describeTarget(t) !== where) throw new Error(`disable-rdp-udp: options.target ${describeTarget(t)} is not the context's target ${where}`);
      }
      if (r.status !== 'changed') return [];
      const backupDir = validateWindowsPath(option(options, 'backupDir', 'string', step) ?? UDP_BACKUP_DIR, 'backup folder');
      return [udpChange((r.before ?? null) as number | null, (r.after ?? null) as number | null, (r.backup ?? null) as string | null, where, backupDir)];
    }
    case 'lower-mtu': {
      if (ctx.target.kind !== 'local') throw new Error(`lower-mtu changes this machine's interface only (--target local), not ${describeTarget(ctx.target)}`);
      if (r.status !== 'changed') return [];
      const iface = option(options, 'interface', 'string', step);
      const mtu = option(options, 'mtu', 'number', step);
      if (iface === undefined || mtu === undefined) throw new TypeError('lower-mtu: options.interface and options.mtu are required (the values the MTU was set with)');
      const origin = option(options, 'origin', 'string', step);
      if (origin !== undefined && origin !== 'set' && origin !== 'found') throw new TypeError(`lower-mtu: options.origin must be 'set' or 'found', not ${JSON.stringify(origin)}`);
      const store = option(options, 'store', 'string', step) ?? (typeof r.store === 'string' ? r.store : undefined);
      const temporary = option(options, 'temporary', 'boolean', step) ?? (store === undefined ? undefined : store === 'active');
      const backupDir = option(options, 'backupDir', 'string', step);
      const o = {
        interface: validateInterface(iface, 'win32'),
        mtu: validateMtu(mtu, 4, origin ?? 'found'),
        ...(temporary !== undefined ? { temporary } : {}),
        ...(backupDir !== undefined ? { backupDir } : {}),
      };
      return [windowsMtuChange(o, r as { before?: number | null; store?: string; backup?: string | null }, describeTarget(ctx.target))];
    }
  }
}
