import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * What an EC2 instance asks of AWS while its user-data runs, answered on the local fleet's own
 * network for a `cadfleet local scale-out` host:
 *
 * - the instance metadata service (IMDSv2 only: a session token first) at 169.254.169.254,
 *   which tells a host its private address and hands it its instance role's credentials;
 * - SSM Parameter Store's GetParameter, for the app's settings parameter, which answers only
 *   requests signed with those credentials;
 * - Secrets Manager's GetSecretValue and PutSecretValue (the stream-token secret), on the same
 *   endpoint, for the roles the stacks' policies let read each secret. PutSecretValue keeps the
 *   first value given under a request token and refuses another one, as Secrets Manager does;
 * - Auto Scaling's CompleteLifecycleAction and SetInstanceHealth (Query API), which it records,
 *   and each host's IMDS `autoscaling/target-lifecycle-state`, which `setLifecycleState` moves
 *   (a scale-in sets it to Terminated, as a group's termination hook does).
 *
 * Each answer depends on who asks: the metadata service knows a host by its source address,
 * as EC2 does. It lives as long as the scale-out command; the app never calls it (its settings
 * hold what it needs once the boot script wrote them).
 */
export interface StandInOptions {
  /** Fleet hosts by address: what the metadata service says to each. */
  instances: ReadonlyMap<string, { instanceId: string; role: string }>;
  /** The instance role's credentials (on the local fleet: what its S3 server accepts). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** SSM parameters by name. */
  parameters: ReadonlyMap<string, string>;
  /**
   * Parameters that do not exist before a time (ms since epoch) nor before they were asked for
   * and refused so many times: a fresh account's settings, written late.
   */
  parametersAppear?: ReadonlyMap<string, { at: number; afterRefusals: number }>;
  /** Secrets Manager secrets by name: the roles that may use each, and its value (none: created without one). */
  secrets?: ReadonlyMap<string, { roles: readonly string[]; current?: string; previous?: string }>;
  region: string;
  /** Where the metadata service listens (the fleet's bridge holds this address meanwhile). */
  metadataAddress: string;
  metadataPort?: number;
  /** Where the SSM endpoint listens (the fleet's gateway), with a certificate the hosts trust. */
  ssmAddress: string;
  /** @default any free port */
  ssmPort?: number;
  ssmTls: { cert: string; key: string };
  /** Each request, for the command's log (never a secret). */
  log?: (line: string) => void;
}

export interface StandIn {
  metadataUrl: string;
  ssmUrl: string;
  /** Requests answered, by path or operation, for the report. */
  served: Map<string, number>;
  /** What hosts told their "auto scaling group", in order. */
  autoscalingCalls: AutoscalingCall[];
  /** Moves a host's lifecycle state, which IMDS `autoscaling/target-lifecycle-state` answers (InService until moved). */
  setLifecycleState(instanceId: string, state: 'InService' | 'Terminated'): void;
  /** Resolves with the first call (made from now on or before) that matches, or rejects after timeoutMs. */
  waitForCall(match: (call: AutoscalingCall) => boolean, timeoutMs: number): Promise<AutoscalingCall>;
  close(): Promise<void>;
}

export interface AutoscalingCall {
  action: 'CompleteLifecycleAction' | 'SetInstanceHealth';
  /** The instance whose address made the call. */
  from: string;
  /** The request's parameters (InstanceId, LifecycleHookName, AutoScalingGroupName, LifecycleActionResult, HealthStatus, ...). */
  params: Record<string, string>;
  at: number;
}

const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';

function listen(server: http.Server, port: number, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve((server.address() as AddressInfo).port));
  });
}

function body(req: http.IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > limit) reject(new Error('request body too large'));
    });
    req.once('end', () => resolve(text));
    req.once('error', reject);
  });
}

export async function startStandIn(o: StandInOptions): Promise<StandIn> {
  const served = new Map<string, number>();
  const count = (what: string): void => void served.set(what, (served.get(what) ?? 0) + 1);
  const log = o.log ?? (() => undefined);
  const tokens = new Map<string, number>();
  const sessionToken = randomBytes(24).toString('base64');
  const roleName = (role: string): string => `cadfleet-local-${role}`;
  const lifecycle = new Map<string, 'InService' | 'Terminated'>();
  /** Who asks: EC2 knows an instance by its source address. */
  const asker = (req: http.IncomingMessage): { source: string; instance: { instanceId: string; role: string } | undefined } => {
    const source = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    return { source, instance: o.instances.get(source) };
  };
  const autoscalingCalls: AutoscalingCall[] = [];
  const waiters = new Set<{ match: (c: AutoscalingCall) => boolean; resolve: (c: AutoscalingCall) => void }>();

  // Secret values as Secrets Manager keeps them: AWSCURRENT and AWSPREVIOUS, and the request
  // tokens of the versions put (a second put under a token with another value is refused).
  const secrets = new Map([...(o.secrets ?? new Map())].map(([name, s]) => [name, { ...s, versions: new Map<string, string>() }]));
  const secretsManager = (
    operation: string,
    input: Record<string, string | undefined>,
    req: http.IncomingMessage,
    reply: (status: number, value: unknown) => void,
    fault: (status: number, type: string, message: string) => void,
  ): void => {
    const role = asker(req).instance?.role;
    const id = input.SecretId ?? '';
    const secret = secrets.get(id);
    const arn = `arn:aws:secretsmanager:${o.region}:000000000000:secret:${id}-AbCdEf`;
    if (!secret) return fault(400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    // What the stacks' policies grant: only the roles named for the secret.
    if (!role || !secret.roles.includes(role)) {
      count(`secretsmanager denied ${operation} ${id}`);
      return fault(400, 'AccessDeniedException', `the ${role ?? 'unknown'} role is not authorized to perform secretsmanager:${operation} on ${arn}`);
    }
    count(`secretsmanager ${operation} ${id}`);
    log(`secretsmanager: ${operation} ${id} by ${role}`);
    if (operation === 'GetSecretValue') {
      const stage = input.VersionStage ?? 'AWSCURRENT';
      const value = stage === 'AWSCURRENT' ? secret.current : stage === 'AWSPREVIOUS' ? secret.previous : undefined;
      if (value === undefined) return fault(400, 'ResourceNotFoundException', `Secrets Manager can't find the specified secret value for staging label: ${stage}`);
      return reply(200, { ARN: arn, Name: id, SecretString: value, VersionStages: [stage], CreatedDate: Date.now() / 1000 });
    }
    if (operation === 'PutSecretValue') {
      const token = input.ClientRequestToken ?? randomBytes(16).toString('hex');
      const value = input.SecretString;
      if (!value) return fault(400, 'InvalidParameterException', 'SecretString is required');
      const earlier = secret.versions.get(token);
      if (earlier !== undefined && earlier !== value) return fault(400, 'ResourceExistsException', "You can't modify an existing version, you can only create new versions.");
      if (earlier === undefined) {
        secret.versions.set(token, value);
        secret.previous = secret.current;
        secret.current = value;
      }
      return reply(200, { ARN: arn, Name: id, VersionId: token, VersionStages: ['AWSCURRENT'] });
    }
    return fault(400, 'InvalidAction', `secretsmanager.${operation}: the stand-in serves GetSecretValue and PutSecretValue only`);
  };

  // Auto Scaling's Query API: form parameters in, XML out.
  const autoscaling = (params: URLSearchParams, req: http.IncomingMessage, res: http.ServerResponse): void => {
    const xml = (status: number, text: string): void => {
      res.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const ns = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
    const error = (code: string, message: string): void =>
      xml(400, `<ErrorResponse xmlns="${ns}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>stand-in</RequestId></ErrorResponse>`);
    const action = params.get('Action') ?? '';
    const { source, instance } = asker(req);
    if (action !== 'CompleteLifecycleAction' && action !== 'SetInstanceHealth') return error('InvalidAction', `${action || 'no Action'}: the stand-in serves CompleteLifecycleAction and SetInstanceHealth only`);
    if (!instance) return error('AccessDenied', `no instance at ${source}`);
    // The host policies let a host act on its own group's instances; the stand-in holds it to its own.
    if (params.get('InstanceId') !== instance.instanceId) return error('AccessDenied', `${instance.instanceId} may not act on ${params.get('InstanceId') ?? 'no instance'}`);
    if (action === 'CompleteLifecycleAction' && lifecycle.get(instance.instanceId) !== 'Terminated') {
      return error('ValidationError', `No active Lifecycle Action found with instance ID ${instance.instanceId}`);
    }
    const call: AutoscalingCall = { action, from: instance.instanceId, params: Object.fromEntries([...params].filter(([k]) => k !== 'Action' && k !== 'Version')), at: Date.now() };
    autoscalingCalls.push(call);
    count(`autoscaling ${action}`);
    log(`autoscaling: ${action} by ${instance.instanceId}`);
    for (const w of waiters) if (w.match(call)) w.resolve(call);
    return xml(200, `<${action}Response xmlns="${ns}"><${action}Result/><ResponseMetadata><RequestId>stand-in</RequestId></ResponseMetadata></${action}Response>`);
  };

  const metadata = http.createServer((req, res) => {
    const { source, instance } = asker(req);
    const reply = (status: number, text: string, type = 'text/plain'): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (!instance) return reply(403, `no instance at ${source}\n`);
    const url = new URL(req.url ?? '/', 'http://metadata');
    if (url.pathname === '/latest/api/token') {
      const ttl = Number(req.headers[TTL_HEADER]);
      if (req.method !== 'PUT' || !Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return reply(400, 'a token is a PUT with X-aws-ec2-metadata-token-ttl-seconds between 1 and 21600\n');
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, Date.now() + ttl * 1000);
      count('imds token');
      return reply(200, token);
    }
    // IMDSv2 only, as the launch templates require: no token, no answer.
    const token = req.headers[TOKEN_HEADER];
    if (typeof token !== 'string' || (tokens.get(token) ?? 0) < Date.now()) return reply(401, '');
    if (req.method !== 'GET') return reply(405, '');
    const meta = url.pathname.replace(/^\/latest\/meta-data\/?/, '');
    const creds = 'iam/security-credentials/';
    let answer: string | undefined;
    if (meta === 'instance-id') answer = instance.instanceId;
    else if (meta === 'local-ipv4') answer = source;
    else if (meta === 'placement/region') answer = o.region;
    else if (meta === 'autoscaling/target-lifecycle-state') answer = lifecycle.get(instance.instanceId) ?? 'InService';
    else if (meta === creds) answer = roleName(instance.role);
    else if (meta === `${creds}${roleName(instance.role)}`) {
      const now = new Date();
      answer = JSON.stringify({
        Code: 'Success',
        LastUpdated: now.toISOString(),
        Type: 'AWS-HMAC',
        AccessKeyId: o.credentials.accessKeyId,
        SecretAccessKey: o.credentials.secretAccessKey,
        Token: sessionToken,
        Expiration: new Date(now.getTime() + 3600_000).toISOString(),
      });
    }
    if (answer === undefined) return reply(404, '');
    count(`imds ${meta.startsWith(creds) ? creds : meta}`);
    log(`metadata: ${instance.instanceId} asked for ${meta}`);
    return reply(200, answer);
  });

  const ssm = https.createServer({ cert: o.ssmTls.cert, key: o.ssmTls.key }, async (req, res) => {
    const reply = (status: number, value: unknown): void => {
      const text = JSON.stringify(value);
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const fault = (status: number, type: string, message: string): void => reply(status, { __type: type, message });
    try {
      const text = await body(req);
      // Only the instance role's credentials, as an instance gets them from the metadata service.
      const auth = req.headers.authorization ?? '';
      if (!auth.includes(`Credential=${o.credentials.accessKeyId}/`) || req.headers['x-amz-security-token'] !== sessionToken) {
        return fault(400, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
      }
      const target = String(req.headers['x-amz-target'] ?? '');
      if (!target && String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return autoscaling(new URLSearchParams(text), req, res);
      if (target.startsWith('secretsmanager.')) return secretsManager(target.slice('secretsmanager.'.length), JSON.parse(text) as Record<string, string | undefined>, req, reply, fault);
      if (target !== 'AmazonSSM.GetParameter') return fault(400, 'InvalidAction', `${target || 'no X-Amz-Target'}: the stand-in serves GetParameter only`);
      const { Name: name } = JSON.parse(text) as { Name?: string };
      const appear = name === undefined ? undefined : o.parametersAppear?.get(name);
      const refusedKey = `ssm GetParameter ${name} (not there yet)`;
      const notYet = appear !== undefined && (appear.at > Date.now() || (served.get(refusedKey) ?? 0) < appear.afterRefusals);
      if (notYet) count(refusedKey);
      const value = name === undefined || notYet ? undefined : o.parameters.get(name);
      if (value === undefined) return fault(400, 'ParameterNotFound', `Parameter ${name ?? '(none)'} not found.`);
      count(`ssm GetParameter ${name}`);
      log(`ssm: GetParameter ${name}`);
      return reply(200, { Parameter: { Name: name, Type: 'SecureString', Value: value, Version: 1, LastModifiedDate: Date.now() / 1000, ARN: `arn:aws:ssm:${o.region}:000000000000:parameter${name}`, DataType: 'text' } });
    } catch (err) {
      return fault(400, 'ValidationException', (err as Error).message);
    }
  });

  const metadataPort = await listen(metadata, o.metadataPort ?? 80, o.metadataAddress);
  let ssmPort: number;
  try {
    ssmPort = await listen(ssm, o.ssmPort ?? 0, o.ssmAddress);
  } catch (err) {
    metadata.close();
    throw err;
  }
  const close = (server: http.Server): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return {
    metadataUrl: `http://${o.metadataAddress}${metadataPort === 80 ? '' : `:${metadataPort}`}`,
    ssmUrl: `https://${o.ssmAddress}:${ssmPort}`,
    served,
    autoscalingCalls,
    setLifecycleState: (instanceId, state) => void lifecycle.set(instanceId, state),
    waitForCall: (match, timeoutMs) => {
      const earlier = autoscalingCalls.find(match);
      if (earlier) return Promise.resolve(earlier);
      return new Promise((resolve, reject) => {
        const waiter = {
          match,
          resolve: (c: AutoscalingCall) => {
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve(c);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching Auto Scaling call within ${Math.round(timeoutMs / 1000)} s (calls so far: ${autoscalingCalls.map((c) => `${c.action} by ${c.from}`).join(', ') || 'none'})`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    close: async () => {
      await Promise.all([close(metadata), close(ssm)]);
    },
  };
}
