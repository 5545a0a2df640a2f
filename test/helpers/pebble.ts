// Pebble, Let's Encrypt's test ACME server (Debian's package), on an address of this machine,
// with pebble-challtestsrv as its DNS: every name resolves to `resolveTo`, so pebble validates
// HTTP-01 challenges against that host's port 80, as Let's Encrypt validates the LB's name.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** PEM of pebble's root: the issuer of the certificates it hands out (made anew at each start). */
  root(): Promise<string>;
  close(): Promise<void>;
}

function command(name: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (found.status !== 0) throw new Error(`${name} is not installed: apt-get install pebble (scripts/setup.sh installs it)`);
  return found.stdout.trim();
}

function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/**
 * Starts pebble on `address` (its HTTPS with `cert`/`key`, which `ca` signed) and its DNS on the
 * same address. Ports: 14000 (ACME), 15000 (management), 8053 (DNS), 8055 (DNS management).
 */
export async function startPebble(o: { address: string; resolveTo: string; cert: string; key: string; ca: string; dir: string }): Promise<Pebble> {
  const pebble = command('pebble');
  const challtestsrv = command('pebble-challtestsrv');
  fs.mkdirSync(o.dir, { recursive: true });
  const config = path.join(o.dir, 'pebble.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `${o.address}:14000`,
        managementListenAddress: `${o.address}:15000`,
        certificate: o.cert,
        privateKey: o.key,
        httpPort: 80,
        tlsPort: 443,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const children: ChildProcess[] = [];
  const log = fs.openSync(path.join(o.dir, 'pebble.log'), 'a');
  const run = (file: string, args: string[], env: Record<string, string> = {}): void => {
    const child = spawn(file, args, { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    children.push(child);
  };
  run(challtestsrv, ['-dns01', `${o.address}:8053`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `${o.address}:8055`, '-defaultIPv4', o.resolveTo, '-defaultIPv6', '']);
  // No artificial waits before validation; no nonce rejections (pebble tests clients with them by default).
  run(pebble, ['-config', config, '-dnsserver', `${o.address}:8053`], { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' });
  const close = async (): Promise<void> => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    fs.closeSync(log);
  };
  const directory = `https://${o.address}:14000/dir`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await get(directory, o.ca)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`pebble did not answer at ${directory} within 20 s; its log: ${fs.readFileSync(path.join(o.dir, 'pebble.log'), 'utf8').slice(-1500)}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    directory,
    root: async () => (await get(`https://${o.address}:15000/roots/0`, o.ca)).body,
    close,
  };
}
