import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from './commands';
import { must, type Runner } from './exec';

/**
 * The local fleet's own certificate authority. The data host's PostgreSQL, Redis and S3 server
 * present certificates it signed, so the app's production TLS code (`rediss://`,
 * `sslmode=verify-full`, HTTPS to S3) runs here unchanged; the LB's certificate too.
 */
export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
}

export const pkiPaths = (fleetRoot: string): Pki => {
  const dir = path.join(fleetRoot, 'pki');
  return { dir, caCert: path.join(dir, 'ca.crt'), caKey: path.join(dir, 'ca.key') };
};

export const caCommand = (pki: Pki, name: string): Argv => [
  'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
  '-keyout', pki.caKey, '-out', pki.caCert, '-days', '3650', '-subj', `/CN=cadfleet local CA (${name})`,
  '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
];

/** A server certificate valid for the host's names and addresses (verify-full checks them). */
export const serverCertCommands = (pki: Pki, name: string, sans: { dns: string[]; ip: string[] }): Argv[] => {
  const key = path.join(pki.dir, `${name}.key`);
  const csr = path.join(pki.dir, `${name}.csr`);
  const ext = path.join(pki.dir, `${name}.ext`);
  return [
    ['openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${sans.dns[0] ?? name}`],
    ['sh', '-c', `printf '%s\\n' "$1" "$2" > "$3"`, 'ext', `subjectAltName=${[...sans.dns.map((d) => `DNS:${d}`), ...sans.ip.map((i) => `IP:${i}`)].join(',')}`, 'extendedKeyUsage=serverAuth', ext],
    ['openssl', 'x509', '-req', '-in', csr, '-CA', pki.caCert, '-CAkey', pki.caKey, '-CAcreateserial', '-days', '825', '-extfile', ext, '-out', path.join(pki.dir, `${name}.crt`)],
  ];
};

export async function ensureCa(runner: Runner, pki: Pki, fleetName: string): Promise<void> {
  if (fs.existsSync(pki.caCert) && fs.existsSync(pki.caKey)) return;
  fs.mkdirSync(pki.dir, { recursive: true, mode: 0o700 });
  await must(runner, caCommand(pki, fleetName));
  fs.chmodSync(pki.caKey, 0o600);
}

/** Issues (once) a certificate for a host; returns the certificate and key paths. */
export async function ensureServerCert(runner: Runner, pki: Pki, name: string, sans: { dns: string[]; ip: string[] }): Promise<{ cert: string; key: string }> {
  const cert = path.join(pki.dir, `${name}.crt`);
  const key = path.join(pki.dir, `${name}.key`);
  if (!fs.existsSync(cert) || !fs.existsSync(key)) {
    for (const argv of serverCertCommands(pki, name, sans)) await must(runner, argv);
    fs.chmodSync(key, 0o600);
    for (const tmp of ['csr', 'ext']) fs.rmSync(path.join(pki.dir, `${name}.${tmp}`), { force: true });
  }
  return { cert, key };
}
