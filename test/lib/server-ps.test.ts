// Rules every generated script and every scripts/ps/*.ps1 file must follow, checked on the real
// PowerShell grammar's tree for every example of inspect-server, restart-termserv, clear-machinekeys
// and toggle-nla, and for each .ps1 file on its own
// (test/generated-scripts.test.ts separately checks they parse and match their golden files):
// full cmdlet names from an allowlist, approved verbs, named parameters, no Invoke-Expression or
// Write-Host, every mutating command inside a ShouldProcess-gated block of an advanced function
// that supports it, and dry-run scripts that run the whole step under -WhatIf.
import type { Node } from 'web-tree-sitter';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { PsExample } from '../../scripts/lib/ps.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PS_DIR, resolvePsFiles } from '../../scripts/lib/ps-loader.ts';
import { aceSetsParam, expectedContainerAces, serviceSid, SESSIONENV_SID } from '../../scripts/lib/server-ps.ts';
import { psParser, walk } from '../helpers/powershell.ts';

const SCRIPTS = ['inspect-server', 'restart-termserv', 'clear-machinekeys', 'toggle-nla', 'lower-mtu', 'disable-rdp-udp', 'test-vpn-latency'];

/** Each script's examples (test/examples/<script>.ts). */
async function examples(): Promise<Array<{ script: string; ex: PsExample }>> {
  const out: Array<{ script: string; ex: PsExample }> = [];
  for (const s of SCRIPTS) {
    const mod = (await import(`../examples/${s}.ts`)) as { examples: () => PsExample[] };
    for (const ex of mod.examples()) out.push({ script: s, ex });
  }
  return out;
}

/**
 * Everything the rules judge: every example script, and every scripts/ps/*.ps1 file on its own
 * (its functions may call what the file and the files it requires define, nothing else).
 */
async function sources(): Promise<Array<{ label: string; text: string; defined: Set<string> }>> {
  const out: Array<{ label: string; text: string; defined: Set<string> }> = [];
  for (const { script, ex } of await examples()) {
    const defined = new Set([...walk(await tree(ex.script))].filter((n) => n.type === 'function_name').map((n) => n.text));
    out.push({ label: `${script}/${ex.label}`, text: ex.script, defined });
  }
  for (const f of readdirSync(PS_DIR).filter((f) => f.endsWith('.ps1')).sort()) {
    const name = f.replace(/\.ps1$/, '');
    const defined = new Set(resolvePsFiles([name]).flatMap((x) => x.functions.map((fn) => fn.name)));
    out.push({ label: `scripts/ps/${f}`, text: readFileSync(join(PS_DIR, f), 'utf8'), defined });
  }
  return out;
}

/** Full names of the cmdlets the generated scripts may call (anything else must be defined in the script). */
const CMDLETS = new Set([
  'Add-Content', 'Add-Type', 'ConvertFrom-Json', 'ConvertTo-Json', 'Copy-Item', 'Export-Certificate', 'ForEach-Object', 'Get-ChildItem', 'Get-CimInstance',
  'Get-Command', 'Get-Content', 'Get-Date', 'Get-FileHash', 'Get-Item', 'Get-NetFirewallRule', 'Get-NetTCPConnection', 'Get-ScheduledTask', 'Get-ScheduledTaskInfo',
  'Get-Service', 'Get-WinEvent', 'Group-Object', 'Invoke-CimMethod', 'Join-Path', 'New-Item', 'New-ItemProperty', 'New-Object', 'New-ScheduledTaskAction',
  'New-ScheduledTaskPrincipal', 'New-ScheduledTaskSettingsSet', 'New-ScheduledTaskTrigger', 'New-TimeSpan', 'Register-ScheduledTask', 'Remove-Item',
  'Remove-ItemProperty', 'Rename-Item', 'Restart-Service', 'Select-Object', 'Set-Content', 'Set-StrictMode', 'Sort-Object', 'Split-Path', 'Start-Service',
  'Start-Sleep', 'Test-Path', 'Unregister-ScheduledTask', 'Where-Object', 'Write-Output', 'Write-Verbose',
  // the target record (record.ps1): its writer's process check, the held record, the atomic move
  'Get-Process', 'Get-Variable', 'Move-Item',
  // the client-side steps (lower-mtu, disable-rdp-udp, the route lookup)
  'Find-NetRoute', 'Get-NetIPInterface', 'Set-NetIPInterface', 'Get-NetAdapter', 'Get-ItemProperty', 'Set-ItemProperty',
]);

/** Commands that change the machine (or write files): each must sit behind $PSCmdlet.ShouldProcess. */
const MUTATING = new Set([
  'Add-Content', 'Copy-Item', 'Export-Certificate', 'Invoke-CimMethod', 'New-Item', 'New-ItemProperty', 'Register-ScheduledTask', 'Remove-Item',
  'Remove-ItemProperty', 'Rename-Item', 'Restart-Service', 'Set-Content', 'Start-Service', 'Stop-Service', 'Set-Service', 'Set-ItemProperty',
  'Set-Acl', 'Unregister-ScheduledTask', 'Out-File', 'Invoke-RdpNative', 'Set-RdpPathSddl', 'Set-NetIPInterface', 'Move-Item',
]);

const APPROVED_VERBS = new Set(['Add', 'Assert', 'Backup', 'Compress', 'ConvertFrom', 'ConvertTo', 'Copy', 'Get', 'Invoke', 'New', 'Register', 'Remove', 'Rename', 'Repair', 'Restart', 'Restore', 'Save', 'Select', 'Set', 'Sort', 'Split', 'Start', 'Test', 'Unregister', 'Wait', 'Where', 'Write', 'Export', 'Group', 'Join', 'Out', 'Stop', 'ForEach', 'Find', 'Initialize', 'Complete', 'Measure']);

async function tree(script: string): Promise<Node> {
  const t = (await psParser()).parse(script);
  if (!t) throw new Error('no tree');
  return t.rootNode;
}

function enclosingFunction(n: Node): Node | null {
  for (let p = n.parent; p; p = p.parent) if (p.type === 'function_statement') return p;
  return null;
}

const fnName = (f: Node | null) => f?.children.find((c) => c?.type === 'function_name')?.text ?? '(top level)';

/** Is the node inside the then-block of `if ($PSCmdlet.ShouldProcess(...))` within its own function? */
function gated(n: Node): boolean {
  let child: Node = n;
  for (let p = n.parent; p && p.type !== 'function_statement'; child = p, p = p.parent) {
    if (p.type === 'if_statement' && child.type === 'statement_block') {
      const cond = p.children.find((c) => c?.type === 'pipeline');
      if (cond && /\$PSCmdlet\.ShouldProcess\(/.test(cond.text)) return true;
    }
  }
  return false;
}

function commandName(cmd: Node): string | null {
  return cmd.children.find((c) => c?.type === 'command_name')?.text ?? null;
}

// ---

const rules = suite('generated server scripts follow the PowerShell rules');

rules('only allowlisted cmdlets (full names) or functions the script (or the .ps1 and what it requires) defines', async () => {
  const bad: string[] = [];
  for (const { label, text, defined } of await sources()) {
    for (const n of walk(await tree(text))) {
      if (n.type !== 'command_name') continue;
      if (!CMDLETS.has(n.text) && !defined.has(n.text)) bad.push(`${label}: ${n.text}`);
    }
  }
  assert.equal(bad, []);
});

rules('every defined function has an approved Verb-Noun name', async () => {
  const bad: string[] = [];
  for (const { label, text } of await sources()) {
    for (const n of walk(await tree(text))) {
      if (n.type !== 'function_name') continue;
      const m = /^([A-Z][a-zA-Z]+)-Rdp[A-Z][A-Za-z]+$/.exec(n.text);
      if (!m || !APPROVED_VERBS.has(m[1]!)) bad.push(`${label}: ${n.text}`);
    }
  }
  assert.equal(bad, []);
});

rules('no Invoke-Expression, no Write-Host, no aliases, no double-quoted string that expands a variable', async () => {
  const bad: string[] = [];
  for (const { label, text } of await sources()) {
    if (/\b(Invoke-Expression|iex|Write-Host)\b/i.test(text)) bad.push(`${label}: forbidden command`);
    for (const n of walk(await tree(text))) {
      if (n.type === 'expandable_string_literal' && /\$/.test(n.text)) bad.push(`${label}: ${n.text}`);
    }
  }
  assert.equal(bad, []);
});

rules('cmdlets get named parameters (no positional arguments)', async () => {
  const bad: string[] = [];
  for (const { label, text } of await sources()) {
    for (const cmd of walk(await tree(text))) {
      if (cmd.type !== 'command') continue;
      const name = commandName(cmd);
      // Write-Output '<marker>' is the foundation's result epilogue (lib/ps.ts buildScript).
      if (!name || !CMDLETS.has(name) || name === 'Write-Output') continue;
      const elements = cmd.children.find((c) => c?.type === 'command_elements');
      const items = (elements?.children ?? []).filter((c): c is Node => !!c && c.type !== 'command_argument_sep' && c.text.trim() !== '' && c.type !== ':');
      let prevWasArgument = true; // an argument right after the name is positional
      for (const it of items) {
        const isParam = it.type === 'command_parameter';
        if (!isParam && prevWasArgument && !/^2>&1$/.test(it.text)) {
          bad.push(`${label}: ${name} ${it.text.slice(0, 40)}`);
          break;
        }
        prevWasArgument = !isParam;
      }
    }
  }
  assert.equal(bad, []);
});

/** Mutating commands that are not behind $PSCmdlet.ShouldProcess in an advanced function that supports it. */
async function ungated(script: string): Promise<string[]> {
  const bad: string[] = [];
  for (const n of walk(await tree(script))) {
    const isCall = n.type === 'command' && (MUTATING.has(commandName(n) ?? '') || n.children.some((c) => c?.type === 'command_invokation_operator'));
    const isSetAcl = n.type === 'member_name' && /SetAccessControl/.test(n.text);
    if (!isCall && !isSetAcl) continue;
    const fn = enclosingFunction(n);
    const name = fnName(fn);
    if (isSetAcl) {
      if (name !== 'Set-RdpPathSddl') bad.push(`SetAccessControl outside Set-RdpPathSddl (in ${name})`);
      continue;
    }
    // Invoke-RdpNative's own call operator is the one place a native program runs; its callers are gated.
    if (name === 'Invoke-RdpNative') continue;
    if (!gated(n)) bad.push(`${n.text.split('\n')[0]!.slice(0, 70)} (in ${name})`);
    else if (fn && !/\[CmdletBinding\(SupportsShouldProcess = \$true\)\]\s*param\(/.test(fn.text)) bad.push(`${name} gates without SupportsShouldProcess`);
  }
  return bad;
}

rules('the gate check itself catches an ungated change, a change in the else branch, and a missing SupportsShouldProcess', async () => {
  const fn = (attr: string, body: string) => `function Set-RdpX {\n    ${attr}\n    param()\n${body}\n}`;
  const ok = fn('[CmdletBinding(SupportsShouldProcess = $true)]', "    if ($PSCmdlet.ShouldProcess('x', 'y')) { Remove-Item -LiteralPath 'C:\\x' }");
  assert.equal(await ungated(ok), []);
  assert.is((await ungated(fn('[CmdletBinding(SupportsShouldProcess = $true)]', "    Remove-Item -LiteralPath 'C:\\x'"))).length, 1);
  assert.is((await ungated(fn('[CmdletBinding(SupportsShouldProcess = $true)]', "    if ($PSCmdlet.ShouldProcess('x', 'y')) { } else { Restart-Service -Name 'TermService' }"))).length, 1);
  assert.is((await ungated(fn('[CmdletBinding()]', "    if ($PSCmdlet.ShouldProcess('x', 'y')) { Remove-Item -LiteralPath 'C:\\x' }"))).length, 1);
  assert.is((await ungated("& icacls.exe 'C:\\x' /grant 'Everyone:F'")).length, 1);
  assert.is((await ungated("[System.IO.File]::SetAccessControl('C:\\x', $sd)")).length, 1);
});

rules('every mutating command is behind $PSCmdlet.ShouldProcess in an advanced function that supports it', async () => {
  const bad: string[] = [];
  for (const { label, text } of await sources()) for (const b of await ungated(text)) bad.push(`${label}: ${b}`);
  assert.equal(bad, []);
});

rules('dry-run examples run the step with -WhatIf:$true and never with -WhatIf:$false', async () => {
  const all = await examples();
  const dry = all.filter(({ ex }) => /dry-run/.test(ex.label));
  assert.ok(dry.length >= 5, 'every mutating script has a dry-run example');
  for (const { script, ex } of all) {
    assert.not.ok(/-WhatIf:\$false/i.test(ex.script), `${script}/${ex.label} never forces -WhatIf:$false`);
    assert.not.ok(/-Confirm:\$true/i.test(ex.script), `${script}/${ex.label} never prompts`);
  }
  for (const { script, ex } of dry) {
    assert.match(ex.script, /^ {4}DryRun = \$true$/m, `${script}/${ex.label} binds DryRun = $true`);
    const call = ex.script.split('\n').find((l) => /^\$Result = [A-Z][a-z]+-Rdp/.test(l));
    assert.ok(call && /-WhatIf:\$P\.DryRun$/.test(call), `${script}/${ex.label}: the step function is called with -WhatIf:$P.DryRun`);
  }
});

rules('values reach the script only through $P, every string there single-quoted', async () => {
  for (const { script, ex } of await examples()) {
    const block = /\$P = \[ordered\]@\{\n([\s\S]*?)\n\}\n/.exec(ex.script);
    if (!block) continue; // the expiry task has no $P: the target prepends its two literals
    for (const line of block[1]!.split('\n').filter((l) => /^ {4}\w+ = /.test(l))) {
      assert.not.ok(/= "/.test(line), `${script}/${ex.label}: ${line.slice(0, 60)} is not double-quoted`);
    }
  }
});

// ---

const facts = suite('server facts');

facts('service SIDs are derived from the name (checked against a well-known one)', () => {
  assert.is(serviceSid('TrustedInstaller'), 'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464');
  assert.is(serviceSid('trustedinstaller'), serviceSid('TrustedInstaller'), 'case does not matter');
  assert.is(SESSIONENV_SID, 'S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833');
});

facts('the RDP key ACL per build: Administrators up to 14393, SessionEnv from 17763, both in between', () => {
  const who = (b: number) => expectedContainerAces(b).map((a) => a.who);
  assert.equal(who(9600), ['SYSTEM', 'NETWORK SERVICE', 'Administrators']);
  assert.equal(who(14393), ['SYSTEM', 'NETWORK SERVICE', 'Administrators']);
  assert.equal(who(17763), ['SYSTEM', 'NETWORK SERVICE', 'NT SERVICE\\SessionEnv']);
  assert.equal(who(26100), ['SYSTEM', 'NETWORK SERVICE', 'NT SERVICE\\SessionEnv']);
  assert.equal(who(16299), ['SYSTEM', 'NETWORK SERVICE', 'Administrators', 'NT SERVICE\\SessionEnv']);
  // icacls gets SIDs, never names (names fail on non-English Windows).
  for (const a of [...expectedContainerAces(14393), ...expectedContainerAces(17763)]) assert.match(a.icacls, /^\*S-1-[0-9-]+:\((F|R)\)$/);
  const p = aceSetsParam();
  assert.equal(p.modern.map((a) => a.grant), ['*S-1-5-18:(F)', '*S-1-5-20:(R)', `*${SESSIONENV_SID}:(F)`]);
  assert.equal(p.other.map((a) => a.grant), ['*S-1-5-20:(R)']);
});

facts('no generated script takes ownership recursively or grants recursively', async () => {
  for (const { script, ex } of await examples()) {
    assert.not.ok(/takeown/i.test(ex.script), `${script}/${ex.label}: no takeown`);
    for (const line of ex.script.split('\n').filter((l) => /'\/grant/.test(l) || /'\/setowner'/.test(l) || /Set-RdpFolderAcl|Set-RdpContainerAcl -Path/.test(l))) {
      assert.not.ok(/'\/t'/.test(line), `${script}/${ex.label}: ${line.trim().slice(0, 80)} is not recursive`);
    }
  }
});

// ---

const restore = suite('restore commands a pasted script prints ($Result.restore)');

/** Every '...{0}...' -f template a restore-line builder adds, as PowerShell would format it. */
function restoreTemplates(script: string): string[] {
  const out: string[] = [];
  const re = /(?:\$lines \+= |\$Out\.restore = @\(|\$result\.restore = @\(|\$putBack = @\(\n\s*)\(?'((?:[^']|'')*)'(?: -f|\))/g;
  for (const m of script.matchAll(re)) out.push(m[1]!.replace(/''/g, "'"));
  return out;
}

restore('every template, filled with hostile-looking paths, is one or more valid PowerShell commands of the restore kind', async () => {
  const allowed = new Set(['Remove-Item', 'Copy-Item', 'reg.exe', 'Restart-Service', 'icacls.exe', 'Rename-Item', 'Set-ItemProperty', 'Remove-ItemProperty', 'Unregister-ScheduledTask', 'netsh.exe']);
  const { psQuote } = await import('../../scripts/lib/ps.ts');
  const seen = new Set<string>();
  const bad: string[] = [];
  for (const { script, ex } of await examples()) {
    for (const t of restoreTemplates(ex.script)) {
      const line = t.replace(/\{\d\}/g, psQuote("C:\\ProgramData\\rdpfix\\backup\\it's $(calc) `x"));
      seen.add(t);
      const root = await tree(line);
      const names = [...walk(root)].filter((n) => n.type === 'command_name').map((n) => n.text);
      if ([...walk(root)].some((n) => n.type === 'ERROR' || n.isMissing)) bad.push(`${script}/${ex.label}: does not parse: ${line}`);
      if (names.length !== 1 || !allowed.has(names[0]!)) bad.push(`${script}/${ex.label}: ${names.join(',')} in ${line}`);
      if ([...walk(root)].some((n) => n.type === 'sub_expression' || n.type === 'expandable_string_literal')) bad.push(`${script}/${ex.label}: a value would expand: ${line}`);
    }
  }
  assert.equal(bad, []);
  assert.ok(seen.size >= 8, `the restore builders were found (${seen.size})`);
});

restore('the steps that back something up say how to restore it', async () => {
  for (const { script, ex } of await examples()) {
    // Read-only scripts (status, inspection, the route lookup), dry runs and undos back nothing up.
    if (/dry-run|status|undo|expiry|default|no-save|route-lookup/.test(ex.label)) continue;
    assert.match(ex.script, /\.restore = @\(/, `${script}/${ex.label}`);
  }
});

rules.run();
facts.run();
restore.run();
