// Every shell line the CLI runs on a host, in one place: pure functions of the host contract
// (app/src/shared/host-contract.ts) and their arguments, tested as whole lines
// (test/cli/remote.test.ts). The commands send them with sshTo (cli/src/environment.ts).
import { HOST_CONTRACT, envFileOf, localUrlOf, portOf, releaseDirOf } from '../../app/src/shared/host-contract';
import type { Role } from './local/fleet';
import { shellQuote } from './shell';

const { install } = HOST_CONTRACT;
/** The units an upgrade restarts: those that run from the release (on the LB nginx keeps serving; the viewer's files switch atomically). */
const UNITS = (role: Role): readonly string[] => HOST_CONTRACT.roles[role].release_units;
/** Each role's readiness URL on its own host (the host contract's `ready` path). */
export const READY: Readonly<Record<Role, string>> = {
  api: localUrlOf('api', 'ready'),
  worker: localUrlOf('worker', 'ready'),
  streamer: localUrlOf('streamer', 'ready'),
  lb: localUrlOf('lb', 'ready'),
  data: '',
};

/** The shell line that takes a host out, switches `current` atomically and starts it again. */
export function switchScript(role: Role, version: string): string {
  const units = UNITS(role).join(' ');
  const target = releaseDirOf(version);
  // An app host that has its settings but no unit yet (on AWS: booted before the first release
  // existed, so its boot script installed nothing) gets the unit the release ships, as the boot
  // script would; the local fleet's hosts have theirs from the deploy, so this does nothing there.
  const app = role === 'api' || role === 'worker' || role === 'streamer';
  const unit = `${UNITS(role)[0]}.service`;
  const firstUnit = app
    ? [
        `if [ ! -e /etc/systemd/system/${unit} ] && [ -f ${shellQuote(`${target}/systemd/${unit}`)} ] && [ -f ${envFileOf(role)} ]; then ` +
          `sudo install -D -m 0644 ${shellQuote(`${target}/systemd/${unit}`)} /etc/systemd/system/${unit} && sudo systemctl daemon-reload && sudo systemctl enable -q ${unit}; fi`,
      ]
    : [];
  return [
    `test -f ${shellQuote(`${target}/VERSION`)} || { echo "release ${version} is not installed on this host" >&2; exit 3; }`,
    ...firstUnit,
    // systemctl stop sends SIGTERM: the node drains (the LB drops it) and finishes its work first.
    // Only the units this host runs (a role not deployed yet has none).
    `units=$(for u in ${units || '""'}; do systemctl cat "$u" >/dev/null 2>&1 && echo "$u"; done; true)`,
    'if [ -n "$units" ]; then sudo systemctl stop $units; fi',
    `sudo ln -sfn ${shellQuote(target)} ${install.current}.next`,
    `sudo mv -Tf ${install.current}.next ${install.current}`,
    'if [ -n "$units" ]; then sudo systemctl start $units; fi',
  ].join(' && ');
}


/** The release `current` names; fails (no output) on a host that has none, even with the folder (-e: every part must exist). */
export const currentReleaseLine = (): string => `readlink -e ${install.current}`;

/** The release `current` names, then every release installed, one per line. */
export const releasesLine = (): string => `basename "$(readlink -f ${install.current})"; ls -1 ${install.releases}`;

/** The migrations of an installed release, run on an api host as the service user with the api's settings. */
export function migrateLine(version: string): string {
  const home = releaseDirOf(version);
  const script = `set -a; . ${envFileOf('api')}; CADFLEET_MIGRATIONS_DIR=${home}/app/migrations exec ${home}/bin/cadfleet-service migrate`;
  return `sudo -u ${install.user} sh -c ${shellQuote(script)}`;
}

/** Succeeds when the host has every unit the release runs (a role not deployed yet has none). */
export const unitsPresentLine = (role: Role): string => UNITS(role).map((u) => `systemctl cat ${u} >/dev/null 2>&1`).join(' && ') || 'true';

/** Prints the HTTP status of the role's ready path on the host itself. */
export const readyProbeLine = (role: Role): string => `curl -s -o /dev/null -w '%{http_code}' --max-time 3 ${READY[role]}`;

/** On the LB: succeeds when nginx routes to the api at `address` (the sync service follows the registry). */
export const apiRoutedLine = (address: string): string => `grep -q ${shellQuote(`server ${address}:${portOf('api')}`)} /etc/nginx/cadfleet/api-upstream.conf`;

/** On the LB: succeeds when nginx routes sessions to the streamer at `address`. */
export const streamerRoutedLine = (address: string): string => `grep -q ${shellQuote(` ${address}:${portOf('streamer')};`)} /etc/nginx/cadfleet/streamers.map`;

/** The last lines of the release units' journal. */
export const journalTailLine = (role: Role, lines: number): string => `sudo journalctl --no-pager -o cat -n ${lines} ${UNITS(role).map((u) => `-u ${u}`).join(' ')}`;

/**
 * The service's own `keys` command on an api host, with the host's environment file sourced
 * there: the database credentials never cross this machine's command lines.
 */
export function serviceKeysArgv(args: readonly string[]): string[] {
  const script = `set -a; . ${envFileOf('api')}; exec ${install.current}/bin/cadfleet-service keys ${args.map(shellQuote).join(' ')}`;
  return ['sudo', '-u', install.user, 'sh', '-c', shellQuote(script)];
}

/** Each role's units and the port of its health path (0: none), from the host contract. */
export const ROLE_CHECKS: Readonly<Record<Role, { units: readonly string[]; healthPort: number }>> = Object.fromEntries(
  Object.entries(HOST_CONTRACT.roles).map(([role, c]) => [role, { units: c.units, healthPort: c.port ?? 0 }]),
) as Record<Role, { units: readonly string[]; healthPort: number }>;

/** One shell line run on the host: release, units, health, and the role's own figures from /metrics. */
export function statusLine(role: Role): string {
  const { units, healthPort } = ROLE_CHECKS[role];
  return [
    `echo "release=$(basename "$(readlink -f ${install.current} 2>/dev/null)" 2>/dev/null)"`,
    `for u in ${units.join(' ')}; do echo "unit.$u=$(systemctl is-active "$u" 2>/dev/null)"; done`,
    healthPort ? `echo "health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:${healthPort}/healthz)"` : 'echo health=n/a',
    // The nginx_lb role marks a certificate it made itself (no tls_certificate_parameter, no deploy-given one).
    role === 'lb' ? 'test -e /etc/nginx/cadfleet/tls/self-signed && echo warning=self-signed-certificate; true' : 'true',
    healthPort && role !== 'lb' ? `curl -s --max-time 3 http://127.0.0.1:${healthPort}/metrics | grep -E '^cadfleet_(queue_jobs\\{state="(waiting|active)"|stream_sessions|active_sessions)' | sed 's/^/metric /'` : 'true',
  ].join('; ');
}
