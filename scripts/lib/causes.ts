// The causes diagnose can name, and the recipe that fixes each. One table shared by diagnose,
// inspect-server's findings, recipe validation and the runner.
export const CAUSES = {
  healthy: null,
  'no-listener': 'service-down',
  unreachable: 'unstable-network',
  'closed-by-server': 'azure-vm-cert',
  'not-rdp': null,
  'security-layer-mismatch': 'security-layer',
  'nla-required': 'nla-mismatch',
  'certificate-key-unusable': 'azure-vm-cert',
  'certificate-expired': 'renew-rdp-cert',
  'tls-version-mismatch': 'security-layer',
  'mtu-blackhole': 'vpn-mtu',
  'unstable-network': 'unstable-network',
  'listener-hung': 'listener-hung',
  'name-not-resolved': null,
} as const satisfies Record<string, string | null>;

export type Cause = keyof typeof CAUSES;

export const CAUSE_NAMES = Object.keys(CAUSES) as Cause[];

export function recipeFor(cause: Cause): string | null {
  return CAUSES[cause];
}
