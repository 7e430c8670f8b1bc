// Entry points for Topology.call(): run many probes or diagnoses in ONE child process inside the
// client namespace (a tsx start-up costs ~0.4 s, so a test batches all its targets), and return
// JSON-serialisable results. Added for the probe-rdp and diagnose tests.
import { verdictOf, type Verdict } from '../../scripts/lib/rdp-verdict.ts';
import { diagnose, type DiagnoseOptions, type DiagnoseReport } from '../../scripts/diagnose.ts';
import { probeRdp, type ProbeOptions, type ProbeResult } from '../../scripts/lib/probe.ts';

export const RDPFIX_CALLS = new URL('./rdpfix-calls.ts', import.meta.url);

export interface Probed {
  probe: ProbeResult;
  verdict: Verdict;
}

/** probeRdp for each entry, all at once. */
export function probeAll(list: ProbeOptions[]): Promise<Probed[]> {
  return Promise.all(list.map(async (o) => {
    const probe = await probeRdp(o);
    return { probe, verdict: verdictOf(probe) };
  }));
}

/** diagnose() for each entry, all at once. */
export function diagnoseAll(list: { host: string; port: number; opts?: DiagnoseOptions }[]): Promise<DiagnoseReport[]> {
  return Promise.all(list.map((t) => diagnose(t.host, t.port, t.opts ?? {})));
}
