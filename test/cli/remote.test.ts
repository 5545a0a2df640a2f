// The shell lines the CLI runs on hosts (cli/src/remote.ts), as whole lines: a change to one is
// a change here too, read by a reviewer, not a substring that still matches.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  apiRoutedLine,
  currentReleaseLine,
  journalTailLine,
  migrateLine,
  readyProbeLine,
  releasesLine,
  serviceKeysArgv,
  statusLine,
  streamerRoutedLine,
  unitsPresentLine,
} from '../../cli/src/remote';

describe('the remote command lines', () => {
  it('read and list releases', () => {
    expect(currentReleaseLine()).toBe('readlink -e /opt/cadfleet/current');
    expect(releasesLine()).toBe('basename "$(readlink -f /opt/cadfleet/current)"; ls -1 /opt/cadfleet/releases');
  });

  it('run the migrations of a release on an api host, as the service user, with its settings', () => {
    expect(migrateLine('1.2.3-abc')).toBe(
      "sudo -u cadfleet sh -c 'set -a; . /etc/cadfleet/api.env; CADFLEET_MIGRATIONS_DIR=/opt/cadfleet/releases/1.2.3-abc/app/migrations exec /opt/cadfleet/releases/1.2.3-abc/bin/cadfleet-service migrate'",
    );
  });

  it('check units, readiness and the journal of a role', () => {
    expect(unitsPresentLine('api')).toBe('systemctl cat cadfleet-api >/dev/null 2>&1');
    expect(unitsPresentLine('data')).toBe('true');
    expect(readyProbeLine('streamer')).toBe("curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:8090/readyz");
    expect(readyProbeLine('lb')).toBe("curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1/healthz");
    expect(journalTailLine('worker', 5)).toBe('sudo journalctl --no-pager -o cat -n 5 -u cadfleet-worker');
  });

  it("find a host in the LB's routing", () => {
    expect(apiRoutedLine('10.0.1.5')).toBe("grep -q 'server 10.0.1.5:8080' /etc/nginx/cadfleet/api-upstream.conf");
    expect(streamerRoutedLine('10.0.1.6')).toBe("grep -q ' 10.0.1.6:8090;' /etc/nginx/cadfleet/streamers.map");
  });

  it("run the service's keys command with the api's settings, each argument quoted", () => {
    const argv = serviceKeysArgv(['create', '--project', "it's"]);
    expect(argv.slice(0, 5)).toEqual(['sudo', '-u', 'cadfleet', 'sh', '-c']);
    // What the host's sh is given, once ssh's own shell took the quotes off; then what it runs.
    const script = execFileSync('sh', ['-c', `printf %s ${argv[5]}`], { encoding: 'utf8' });
    expect(script).toBe("set -a; . /etc/cadfleet/api.env; exec /opt/cadfleet/current/bin/cadfleet-service keys 'create' '--project' 'it'\\''s'");
    expect(execFileSync('sh', ['-c', `printf '[%s]' ${script.split(' keys ')[1]}`], { encoding: 'utf8' })).toBe("[create][--project][it's]");
  });

  it('report a host: release, units, health, self-signed certificate, figures', () => {
    expect(statusLine('data')).toBe(
      'echo "release=$(basename "$(readlink -f /opt/cadfleet/current 2>/dev/null)" 2>/dev/null)"; ' +
        'for u in postgresql redis-server cadfleet-s3; do echo "unit.$u=$(systemctl is-active "$u" 2>/dev/null)"; done; echo health=n/a; true; true',
    );
    expect(statusLine('lb')).toBe(
      'echo "release=$(basename "$(readlink -f /opt/cadfleet/current 2>/dev/null)" 2>/dev/null)"; ' +
        'for u in nginx cadfleet-lb-sync; do echo "unit.$u=$(systemctl is-active "$u" 2>/dev/null)"; done; ' +
        `echo "health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:80/healthz)"; ` +
        'test -e /etc/nginx/cadfleet/tls/self-signed && echo warning=self-signed-certificate; true; true',
    );
  });
});
