// Where the stacks' tests take the AWS provider from: a mirror on machines that have one,
// else the registry. Neither case skips the plan.
import { describe, expect, it } from 'vitest';
import { providerCliConfig } from './helpers/terraform';

describe('the provider source of the plan tests', () => {
  it('takes hashicorp/aws from the mirror only, and nothing from the network, where a mirror exists', () => {
    const config = providerCliConfig('/opt/tf-plugins');
    expect(config).toContain('filesystem_mirror {\n    path    = "/opt/tf-plugins"\n    include = ["registry.terraform.io/hashicorp/aws"]');
    expect(config).toContain('direct {\n    exclude = ["registry.terraform.io/*/*"]');
  });

  it('installs from the registry into a cache in the checkout where none does', () => {
    // No provider_installation block: terraform's default, the registry, for every provider.
    expect(providerCliConfig(null, '/repo/.cadfleet/tools/terraform-plugins')).toBe('plugin_cache_dir = "/repo/.cadfleet/tools/terraform-plugins"\n');
  });
});
