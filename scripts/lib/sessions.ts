// Who a TermService restart disconnects: the signed-in sessions a step's script reports (WTS API,
// scripts/ps/sessions.ps1 Get-RdpSession) judged again in TypeScript, and how they are named in a
// report. Used by every step that ends in a restart (restart-termserv, clear-machinekeys).
import { asArray } from './server-step.ts';

/** One signed-in session as Get-RdpSession reports it (WTS API). */
export interface SessionRecord {
  id: number;
  user: string;
  state: string;
  client?: string | null;
  station?: string | null;
}

/** Get-RdpSession: the caller's own session id, how many are signed in, the first few, or an error. */
export interface SessionFacts {
  own?: number;
  count?: number;
  list?: SessionRecord[] | SessionRecord;
  error?: string | null;
}

export interface SessionImpact {
  /** Other users' sessions a restart disconnects (the first few by name). */
  others: SessionRecord[];
  /** Signed-in sessions beyond those listed by name. */
  more: number;
  /** The caller's own session, when the caller is signed in on the server (the local channel). */
  own: SessionRecord | null;
  /** Why the list is unknown (then a restart is refused without --force, like a list of others). */
  unknown: string | null;
  /** True when a restart without --force must be refused. */
  blocks: boolean;
}

/**
 * Who a TermService restart disconnects: every signed-in session but the caller's. A stopped
 * TermService has none to lose. The same rule as the generated Test-RdpSessionBlock, re-checked here
 * on what the target reported.
 */
export function sessionImpact(facts: SessionFacts | null | undefined, termServiceRunning: boolean): SessionImpact {
  const none: SessionImpact = { others: [], more: 0, own: null, unknown: null, blocks: false };
  if (!termServiceRunning) return none;
  if (!facts) return { ...none, unknown: 'the target did not report its sessions', blocks: true };
  if (facts.error) return { ...none, unknown: facts.error, blocks: true };
  const list = asArray<SessionRecord>(facts.list).filter((x) => x && typeof x.id === 'number' && x.user);
  const own = list.find((x) => x.id === facts.own) ?? null;
  const others = list.filter((x) => x !== own);
  const more = Math.max(0, (typeof facts.count === 'number' ? facts.count : list.length) - list.length);
  return { others, more, own, unknown: null, blocks: others.length + more > 0 };
}

export const describeSession = (x: SessionRecord) => `${x.user} (session ${x.id}, ${x.state}${x.client ? `, from ${x.client}` : ''})`;

/** The sessions a restart disconnects, by name, then how many more: "alice (session 2, ...); 3 more". */
export function sessionText(i: SessionImpact): string {
  return [...i.others.map(describeSession), ...(i.more ? [`${i.more} more`] : [])].join('; ');
}
