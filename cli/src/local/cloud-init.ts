import fs from 'node:fs';
import path from 'node:path';
import { FLEET_CA_FILE } from '../deploy/service-env';
import type { HostSpec } from './fleet';

/** What the local platform gives a cloud-init host before it boots, as EC2 gives an instance. */
export interface CloudInitSeed {
  userData: string;
  /** PEM of the fleet CA: the fleet's "public" PKI (the data host's TLS, the SSM stand-in). */
  caCertificate: string;
}

/**
 * cloud-init's settings on the local platform: the NoCloud seed on the host's disk, no network
 * configuration (the fleet makes each host's network from outside, as nspawn hands it over),
 * and the SSH host key this fleet pinned kept (cloud-init would otherwise make new ones).
 */
export const LOCAL_CLOUD_CONFIG = `# Written by cadfleet local scale-out: the local fleet's platform, not the host's user-data.
datasource_list: [NoCloud]
network:
  config: disabled
ssh_deletekeys: false
ssh_genkeytypes: []
preserve_hostname: true
manage_etc_hosts: false
`;

/** Writes the NoCloud seed, the platform's cloud-init settings and the fleet CA into a new host's layer. */
export function writeCloudInitSeed(upper: string, base: string, host: HostSpec, seed: CloudInitSeed): void {
  const seedDir = path.join(upper, 'var/lib/cloud/seed/nocloud');
  fs.mkdirSync(seedDir, { recursive: true });
  fs.writeFileSync(path.join(seedDir, 'meta-data'), `instance-id: ${host.hostname}\nlocal-hostname: ${host.hostname}\n`);
  fs.writeFileSync(path.join(seedDir, 'user-data'), seed.userData, { mode: 0o600 });
  fs.mkdirSync(path.join(upper, 'etc/cloud/cloud.cfg.d'), { recursive: true });
  fs.writeFileSync(path.join(upper, 'etc/cloud/cloud.cfg.d/90-cadfleet-local.cfg'), LOCAL_CLOUD_CONFIG);
  trustFleetCa(upper, base, seed.caCertificate);
}

/**
 * Trusts the fleet CA in a new host's layer like a public CA, as the platform hands a machine its
 * trust store: at FLEET_CA_FILE (where the deploy's common role puts it) and in the system bundle
 * (as update-ca-certificates would make it), so that the AWS CLI, curl and the app trust it from
 * the first boot, and the common role finds it in place (no trust store update on a first deploy).
 */
export function trustFleetCa(upper: string, base: string, caCertificate: string): void {
  const ca = caCertificate.endsWith('\n') ? caCertificate : `${caCertificate}\n`;
  fs.mkdirSync(path.dirname(path.join(upper, FLEET_CA_FILE)), { recursive: true });
  fs.writeFileSync(path.join(upper, FLEET_CA_FILE), ca);
  const bundle = 'etc/ssl/certs/ca-certificates.crt';
  fs.mkdirSync(path.dirname(path.join(upper, bundle)), { recursive: true });
  fs.writeFileSync(path.join(upper, bundle), `${fs.readFileSync(path.join(base, bundle), 'utf8')}${ca}`);
}

/** A host that `cadfleet local up` makes is deployed by Ansible: cloud-init stays off on it. */
export function disableCloudInit(upper: string): void {
  fs.mkdirSync(path.join(upper, 'etc/cloud'), { recursive: true });
  fs.writeFileSync(path.join(upper, 'etc/cloud/cloud-init.disabled'), 'cadfleet: this host is deployed with Ansible (cadfleet deploy)\n');
}
