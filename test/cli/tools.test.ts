import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectToolsBin, withProjectTools } from '../../cli/src/tools';

describe('the checkout\'s tools on PATH', () => {
  it('puts .cadfleet/tools/bin first, once, so terraform installed by setup wins over a missing or old one', () => {
    expect(projectToolsBin('/repo')).toBe('/repo/.cadfleet/tools/bin');
    expect(withProjectTools('/usr/local/bin:/usr/bin', '/repo')).toBe(['/repo/.cadfleet/tools/bin', '/usr/local/bin', '/usr/bin'].join(path.delimiter));
    expect(withProjectTools(withProjectTools('/usr/bin', '/repo'), '/repo')).toBe('/repo/.cadfleet/tools/bin:/usr/bin');
    expect(withProjectTools(undefined, '/repo')).toBe('/repo/.cadfleet/tools/bin');
  });
});
