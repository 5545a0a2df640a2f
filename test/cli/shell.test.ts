import { execaSync } from 'execa';
import { describe, expect, it } from 'vitest';
import { shellQuote } from '../../cli/src/shell';

// What the hosts' `sh` (dash on Debian) reads back, one NUL-terminated word each.
const words = (script: string): string[] => execaSync('sh', ['-c', script]).stdout.split('\0').slice(0, -1);

const AWKWARD = ["it's", 'a b', '$HOME', '`id`', 'back\\slash', 'new\nline', '', '*', "'", "''", 'a"b', '--flag=x y'];

describe('shellQuote', () => {
  it('gives a POSIX sh every word back as it was', () => {
    expect(words(`printf '%s\\0' ${AWKWARD.map(shellQuote).join(' ')}`)).toEqual(AWKWARD);
  });

  it('survives a second shell, as in ssh host sudo -u cadfleet sh -c <script>', () => {
    const inner = `printf '%s\\0' ${AWKWARD.map(shellQuote).join(' ')}`;
    expect(words(`sh -c ${shellQuote(inner)}`)).toEqual(AWKWARD);
  });
});
