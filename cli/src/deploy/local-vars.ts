// What the playbooks are given for the local fleet (secrets this machine keeps, the fleet CA
// and the certificates it signs), and the fleet's releases bucket on its data host.
import fs from 'node:fs';
import { ensureCa, ensureServerCert, pkiPaths } from '../local/pki';
import type { Outputs } from '../outputs';
import type { Release } from '../release/bundle';
import { releaseStore, type ReleaseStore } from '../release/store';
import type { DeployOptions } from './options';
import { ensureLocalSecrets } from './local-secrets';
import { S3RVER_KEYS, localServiceEnv } from './service-env';

/** Everything the playbooks need for the local fleet: secrets, the CA and the data host's certificate. */
export async function localVars(opts: DeployOptions, release: Release): Promise<Record<string, unknown>> {
  const secrets = ensureLocalSecrets(opts.stateRoot);
  const pki = pkiPaths(opts.stateRoot);
  await ensureCa(opts.runner, pki, opts.env.name);
  const data = opts.env.hosts.find((h) => h.role === 'data');
  const lb = opts.env.hosts.find((h) => h.role === 'lb');
  if (!data || !lb) throw new Error('the local environment has no data or lb host');
  const cert = await ensureServerCert(opts.runner, pki, data.name, { dns: [data.name, 'data'], ip: [data.address] });
  const lbCert = await ensureServerCert(opts.runner, pki, lb.name, { dns: [lb.name, 'localhost'], ip: [lb.address] });
  const read = (file: string): string => fs.readFileSync(file, 'utf8');
  const serviceEnv = localServiceEnv(opts.env.outputs, secrets);
  const subnet = `${data.address.split('.').slice(0, 3).join('.')}.0/24`;
  return {
    common_ca_certificate: read(pki.caCert),
    common_unattended_upgrades: false,
    // Every port of a host but SSH (and the LB's HTTP/HTTPS) answers the fleet's host range
    // only: <subnet>.0/25 holds the bridge's gateway (.1, this machine, where the operator and
    // the CLI run) and every host address the fleet hands out (.10 up, hosts added later
    // included). Anything else on the fleet's network (or routed to it) gets no answer from the
    // app's ports, PostgreSQL, Redis or the S3 stand-in.
    firewall_trusted_sources: localFirewallSources(data.address),
    postgresql_local_password: secrets.postgresPassword,
    postgresql_local_allowed_cidr: subnet,
    postgresql_local_tls_cert: read(cert.cert),
    postgresql_local_tls_key: read(cert.key),
    redis_local_password: secrets.redisPassword,
    redis_local_tls_cert: read(cert.cert),
    redis_local_tls_key: read(cert.key),
    redis_local_tls_ca: read(pki.caCert),
    s3_local_tls_cert: read(cert.cert),
    s3_local_tls_key: read(cert.key),
    nginx_lb_tls_cert: `${read(lbCert.cert)}${read(pki.caCert)}`,
    nginx_lb_tls_key: read(lbCert.key),
    release_version: release.version,
    release_tarball: release.tarball,
    release_sha256: release.sha256,
    cadfleet_service_env_common: serviceEnv,
  };
}

/** The local fleet's host range, <subnet>.0/25: the bridge's gateway and every host address it hands out. */
export function localFirewallSources(dataAddress: string): string[] {
  return [`${dataAddress.split('.').slice(0, 3).join('.')}.0/25`];
}

/**
 * The local fleet's releases bucket, on the data host's S3 server (s3rver's key pair, the fleet
 * CA): where a deploy publishes what it installed, for hosts that boot without a deploy.
 */
export function localReleaseStore(outputs: Outputs, stateRoot: string): ReleaseStore {
  const { buckets } = outputs;
  if (!buckets.endpoint) throw new Error('the local outputs name no S3 endpoint');
  return releaseStore({ bucket: buckets.releases, endpoint: buckets.endpoint, credentials: S3RVER_KEYS, caFile: pkiPaths(stateRoot).caCert });
}
