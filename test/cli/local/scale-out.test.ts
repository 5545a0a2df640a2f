// What a `cadfleet local scale-out` host gets from its platform before and while it boots: the
// NoCloud seed on its disk, and stand-ins of EC2's metadata service (IMDSv2) and SSM's
// GetParameter, reached here with plain HTTP and the AWS SDK's own SSM client.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStandIn, type StandIn } from '../../../cli/src/local/cloud-stand-in';
import { LOCAL_CLOUD_CONFIG, disableCloudInit, writeCloudInitSeed } from '../../../cli/src/local/cloud-init';
import { FLEET_CA_FILE } from '../../../cli/src/deploy/service-env';
import { makeTlsFiles } from '../../../scripts/local-services';
import { tempDir } from '../../helpers/convert';

const dir = tempDir('cadfleet-stand-in-');
const tls = makeTlsFiles(path.join(dir, 'tls'));
let standIn: StandIn;

function request(method: string, url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  standIn = await startStandIn({
    instances: new Map([['127.0.0.1', { instanceId: 'cft-worker-3', role: 'worker' }]]),
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    parameters: new Map([['/cadfleet/local/app.env', 'CADFLEET_REDIS_URL=rediss://:pw@10.0.0.11:6379\n']]),
    secrets: new Map([
      ['cadfleet/local/stream-token', { roles: ['worker'] }],
      ['cadfleet/local/api-only', { roles: ['api'], current: 'c'.repeat(40) }],
    ]),
    region: 'us-east-1',
    metadataAddress: '127.0.0.1',
    metadataPort: 0,
    ssmAddress: '127.0.0.1',
    ssmTls: { cert: fs.readFileSync(tls.certFile, 'utf8'), key: fs.readFileSync(tls.keyFile, 'utf8') },
  });
});

afterAll(async () => {
  await standIn?.close();
});

describe('the metadata stand-in', () => {
  it('answers IMDSv2 only: a PUT for a session token first, then the instance\'s own address, id and role credentials', async () => {
    const meta = (p: string, token?: string) => request('GET', `${standIn.metadataUrl}/latest/meta-data/${p}`, token ? { 'X-aws-ec2-metadata-token': token } : {});
    expect((await meta('local-ipv4')).status).toBe(401);
    expect((await meta('local-ipv4', 'made-up')).status).toBe(401);
    expect((await request('PUT', `${standIn.metadataUrl}/latest/api/token`)).status).toBe(400);
    const token = await request('PUT', `${standIn.metadataUrl}/latest/api/token`, { 'X-aws-ec2-metadata-token-ttl-seconds': '300' });
    expect(token.status).toBe(200);
    expect(await meta('local-ipv4', token.body)).toEqual({ status: 200, body: '127.0.0.1' });
    expect(await meta('instance-id', token.body)).toEqual({ status: 200, body: 'cft-worker-3' });
    expect(await meta('iam/security-credentials/', token.body)).toEqual({ status: 200, body: 'cadfleet-local-worker' });
    const creds = JSON.parse((await meta('iam/security-credentials/cadfleet-local-worker', token.body)).body) as Record<string, string>;
    expect(creds).toMatchObject({ Code: 'Success', AccessKeyId: 'S3RVER', SecretAccessKey: 'S3RVER', Type: 'AWS-HMAC' });
    expect(Date.parse(creds.Expiration!)).toBeGreaterThan(Date.now());
    expect((await meta('iam/security-credentials/someone-else', token.body)).status).toBe(404);
  });

  it('knows hosts by their address: another source gets nothing', async () => {
    const r = await request('PUT', `${standIn.metadataUrl}/latest/api/token`, { 'X-aws-ec2-metadata-token-ttl-seconds': '300' }, '127.0.0.2');
    expect(r).toEqual({ status: 403, body: 'no instance at 127.0.0.2\n' });
  });
});

describe('the SSM stand-in', () => {
  const client = (credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) =>
    new SSMClient({ region: 'us-east-1', endpoint: standIn.ssmUrl, credentials, maxAttempts: 1, requestHandler: { httpsAgent: new https.Agent({ ca: fs.readFileSync(tls.caFile) }) } });

  async function instanceCredentials() {
    const token = (await request('PUT', `${standIn.metadataUrl}/latest/api/token`, { 'X-aws-ec2-metadata-token-ttl-seconds': '60' })).body;
    const c = JSON.parse((await request('GET', `${standIn.metadataUrl}/latest/meta-data/iam/security-credentials/cadfleet-local-worker`, { 'X-aws-ec2-metadata-token': token })).body) as Record<string, string>;
    return { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.Token! };
  }

  it('gives the settings parameter to the SDK signed with the instance role\'s credentials', async () => {
    const ssm = client(await instanceCredentials());
    const got = await ssm.send(new GetParameterCommand({ Name: '/cadfleet/local/app.env', WithDecryption: true }));
    expect(got.Parameter).toMatchObject({ Name: '/cadfleet/local/app.env', Type: 'SecureString', Value: 'CADFLEET_REDIS_URL=rediss://:pw@10.0.0.11:6379\n' });
    await expect(ssm.send(new GetParameterCommand({ Name: '/cadfleet/other/app.env' }))).rejects.toMatchObject({ name: 'ParameterNotFound' });
    ssm.destroy();
    expect(standIn.served.get('ssm GetParameter /cadfleet/local/app.env')).toBe(1);
  });

  it('refuses credentials that did not come from the metadata service', async () => {
    const ssm = client({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
    await expect(ssm.send(new GetParameterCommand({ Name: '/cadfleet/local/app.env' }))).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
    ssm.destroy();
  });
});

describe('the Secrets Manager stand-in', () => {
  async function secretsClient() {
    const token = (await request('PUT', `${standIn.metadataUrl}/latest/api/token`, { 'X-aws-ec2-metadata-token-ttl-seconds': '60' })).body;
    const c = JSON.parse((await request('GET', `${standIn.metadataUrl}/latest/meta-data/iam/security-credentials/cadfleet-local-worker`, { 'X-aws-ec2-metadata-token': token })).body) as Record<string, string>;
    return new SecretsManagerClient({
      region: 'us-east-1',
      endpoint: standIn.ssmUrl,
      credentials: { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.Token! },
      maxAttempts: 1,
      requestHandler: { httpsAgent: new https.Agent({ ca: fs.readFileSync(tls.caFile) }) },
    });
  }

  it('creates a secret\'s first value once under a request token, refuses another value under it, and keeps the one before a rotation', async () => {
    const sm = await secretsClient();
    const id = 'cadfleet/local/stream-token';
    await expect(sm.send(new GetSecretValueCommand({ SecretId: id }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    const first = 'f'.repeat(40);
    await sm.send(new PutSecretValueCommand({ SecretId: id, ClientRequestToken: 'first-version-0000000000000000000001', SecretString: first }));
    // The same token again: the same value is a no-op, another one is refused (a host that lost the race).
    await sm.send(new PutSecretValueCommand({ SecretId: id, ClientRequestToken: 'first-version-0000000000000000000001', SecretString: first }));
    await expect(sm.send(new PutSecretValueCommand({ SecretId: id, ClientRequestToken: 'first-version-0000000000000000000001', SecretString: 'x'.repeat(40) }))).rejects.toMatchObject({ name: 'ResourceExistsException' });
    expect((await sm.send(new GetSecretValueCommand({ SecretId: id }))).SecretString).toBe(first);
    await expect(sm.send(new GetSecretValueCommand({ SecretId: id, VersionStage: 'AWSPREVIOUS' }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    // A rotation: a new version becomes current, the first one previous.
    await sm.send(new PutSecretValueCommand({ SecretId: id, ClientRequestToken: 'rotation-00000000000000000000000002', SecretString: 'r'.repeat(40) }));
    expect((await sm.send(new GetSecretValueCommand({ SecretId: id }))).SecretString).toBe('r'.repeat(40));
    expect((await sm.send(new GetSecretValueCommand({ SecretId: id, VersionStage: 'AWSPREVIOUS' }))).SecretString).toBe(first);
    sm.destroy();
  });

  it('answers only the roles a secret is granted to, and records who asked', async () => {
    const sm = await secretsClient();
    await expect(sm.send(new GetSecretValueCommand({ SecretId: 'cadfleet/local/api-only' }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    await expect(sm.send(new GetSecretValueCommand({ SecretId: 'cadfleet/local/nothing' }))).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    sm.destroy();
    expect(standIn.served.get('secretsmanager denied GetSecretValue cadfleet/local/api-only')).toBe(1);
    expect(standIn.served.get('secretsmanager GetSecretValue cadfleet/local/api-only')).toBeUndefined();
  });
});

describe('the seed of a cloud-init host', () => {
  it('puts the user-data and meta-data where NoCloud finds them, the platform settings, and the fleet CA among the trusted ones', () => {
    const base = tempDir('cadfleet-base-');
    fs.mkdirSync(path.join(base, 'etc/ssl/certs'), { recursive: true });
    fs.writeFileSync(path.join(base, 'etc/ssl/certs/ca-certificates.crt'), '-----BEGIN CERTIFICATE-----\npublic\n-----END CERTIFICATE-----\n');
    const upper = tempDir('cadfleet-upper-');
    const ca = fs.readFileSync(tls.caFile, 'utf8');
    writeCloudInitSeed(upper, base, { name: 'worker-3', hostname: 'cft-worker-3', role: 'worker', index: 3, ip: '10.0.0.33', netns: 'cft-worker-3', veth: 'cftvwk-3' }, { userData: '#!/bin/bash\necho boot\n', caCertificate: ca });
    const seed = path.join(upper, 'var/lib/cloud/seed/nocloud');
    expect(fs.readFileSync(path.join(seed, 'meta-data'), 'utf8')).toBe('instance-id: cft-worker-3\nlocal-hostname: cft-worker-3\n');
    expect(fs.readFileSync(path.join(seed, 'user-data'), 'utf8')).toBe('#!/bin/bash\necho boot\n');
    expect(fs.statSync(path.join(seed, 'user-data')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(upper, 'etc/cloud/cloud.cfg.d/90-cadfleet-local.cfg'), 'utf8')).toBe(LOCAL_CLOUD_CONFIG);
    expect(LOCAL_CLOUD_CONFIG).toMatch(/^datasource_list: \[NoCloud\]$/m);
    expect(LOCAL_CLOUD_CONFIG).toMatch(/^ssh_deletekeys: false$/m);
    expect(fs.readFileSync(path.join(upper, FLEET_CA_FILE), 'utf8')).toBe(ca);
    const bundle = fs.readFileSync(path.join(upper, 'etc/ssl/certs/ca-certificates.crt'), 'utf8');
    expect(bundle.startsWith('-----BEGIN CERTIFICATE-----\npublic\n')).toBe(true);
    expect(bundle.endsWith(ca)).toBe(true);
    expect(fs.existsSync(path.join(upper, 'etc/cloud/cloud-init.disabled'))).toBe(false);
  });

  it('turns cloud-init off on the hosts that Ansible deploys', () => {
    const upper = tempDir('cadfleet-upper-');
    disableCloudInit(upper);
    expect(fs.existsSync(path.join(upper, 'etc/cloud/cloud-init.disabled'))).toBe(true);
  });
});
