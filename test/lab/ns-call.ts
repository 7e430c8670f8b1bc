// Child-process side of Topology.call(): runs inside a namespace, imports a
// module, calls one export with JSON arguments read from stdin, and prints the
// result as one marked JSON line (other stdout output of the callee is allowed).
const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { module: string; exportName: string; args: unknown[] };

let out: { ok: boolean; value?: unknown; error?: string };
try {
  const mod = (await import(req.module)) as Record<string, unknown>;
  const fn = mod[req.exportName];
  if (typeof fn !== 'function') throw new Error(`${req.module} has no function export "${req.exportName}"`);
  out = { ok: true, value: await (fn as (...a: unknown[]) => unknown)(...req.args) };
} catch (err) {
  out = { ok: false, error: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) };
}
process.stdout.write(`\n@@rfx-result@@${JSON.stringify(out)}\n`);
// Callees may leave sockets/timers behind; the result is out, so leave.
process.exit(0);
