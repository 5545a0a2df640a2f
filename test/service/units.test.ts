// Pure pieces of the service: configuration, names, keys in headers, error classification,
// the registry record format.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyFromHeader } from '../../app/src/api/auth';
import { ConfigError, loadConfig, loadDatabaseConfig } from '../../app/src/shared/config';
import { inputFileName } from '../../app/src/worker/conversions';
import { acceptedFormat, checkUploadName } from '../../app/src/api/file-names';
import { HttpError, isDependencyError } from '../../app/src/shared/http-errors';
import { createHealth, okForAWhile } from '../../app/src/shared/health';
import { parseNodeRecord, registryKeys } from '../../app/src/shared/registry';

const BASE = {
  CADFLEET_DATABASE_URL: 'postgres://u:secret-pw@db.internal:5432/cadfleet',
  CADFLEET_REDIS_URL: 'rediss://cache.internal:6379',
  CADFLEET_S3_UPLOADS_BUCKET: 'acme-uploads',
  CADFLEET_S3_MODELS_BUCKET: 'acme-models',
};

describe('configuration', () => {
  it('applies secure defaults', () => {
    const config = loadConfig(BASE);
    expect(config.database.sslMode).toBe('verify-full');
    expect(config.http.port).toBe(8080);
    expect(config.uploads.maxBytes).toBe(100 * 1024 * 1024);
    expect(config.worker).toMatchObject({ attempts: 3, converterMode: 'pool', concurrency: 1 });
    expect(config.nodeTtlMs).toBe(3 * config.heartbeatMs);
    // A check may take as long as the interval between checks, within 1 to 5 s, unless set.
    expect(config.dependencyTimeoutMs).toBe(2000);
    expect(loadConfig({ ...BASE, CADFLEET_DEPENDENCY_CHECK_MS: '300' }).dependencyTimeoutMs).toBe(1000);
    expect(loadConfig({ ...BASE, CADFLEET_DEPENDENCY_CHECK_MS: '300', CADFLEET_DEPENDENCY_TIMEOUT_MS: '5000' }).dependencyTimeoutMs).toBe(5000);
  });

  it('takes sslmode and sslrootcert from the URL and keeps them out of the driver URL', () => {
    const { database } = loadDatabaseConfig({ CADFLEET_DATABASE_URL: 'postgres://u@h/db?sslmode=require&application_name=x' });
    expect(database.sslMode).toBe('require');
    expect(database.url).toBe('postgres://u@h/db?application_name=x');
    expect(() => loadDatabaseConfig({ CADFLEET_DATABASE_URL: 'postgres://u@h/db?sslrootcert=/nonexistent/ca.pem' })).toThrow(/sslrootcert must name a readable file/);
  });

  it('names every bad variable and never echoes the database URL', () => {
    let error: unknown;
    try {
      loadConfig({ ...BASE, CADFLEET_DATABASE_URL: 'mysql://u:secret-pw@h/db', CADFLEET_REDIS_URL: undefined, CADFLEET_MAX_UPLOAD_MB: '0' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/CADFLEET_DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL, got \[REDACTED\]/);
    expect(message).toMatch(/CADFLEET_REDIS_URL is required, it is not set/);
    expect(message).toMatch(/CADFLEET_MAX_UPLOAD_MB must be at least 1, got "0"/);
    expect(message).not.toContain('secret-pw');
  });
});

describe('upload names', () => {
  it.each(['../x.stp', '..\\x.stp', 'a/b.stp', 'x\u0000.stp', '', '..'])('refuses %j', (name) => {
    expect(() => checkUploadName(name)).toThrow(HttpError);
  });
  it('accepts plain names and known extensions in any case', () => {
    expect(checkUploadName('Bracket v2 (final).STEP')).toBe('Bracket v2 (final).STEP');
    expect(acceptedFormat('Bracket.STEP')).toBe('step');
    expect(() => acceptedFormat('x.exe')).toThrow(/not supported/);
  });
  it('names the worker input after the upload only when that is safe', () => {
    expect(inputFileName('part.stp', 'stp')).toBe('part.stp');
    expect(inputFileName('../part.stp', 'stp')).toBe('input.stp');
    expect(inputFileName('part.txt', 'stp')).toBe('input.stp');
  });
});

describe('keys in headers', () => {
  it('reads Bearer everywhere and Basic only where allowed', () => {
    expect(keyFromHeader('Bearer cfk_abc', false)).toBe('cfk_abc');
    const basic = `Basic ${Buffer.from('admin:cfk_abc').toString('base64')}`;
    expect(keyFromHeader(basic, true)).toBe('cfk_abc');
    expect(keyFromHeader(basic, false)).toBe('');
    expect(keyFromHeader(undefined, true)).toBeUndefined();
  });
});

describe('dependency errors', () => {
  it('tells unreachable services from bugs', () => {
    expect(isDependencyError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isDependencyError(Object.assign(new Error('the database system is shutting down'), { code: '57P03' }))).toBe(true);
    expect(isDependencyError(Object.assign(new Error('S3 failed'), { $metadata: { httpStatusCode: 503 } }))).toBe(true);
    expect(isDependencyError(Object.assign(new Error('NoSuchBucket'), { $metadata: { httpStatusCode: 404 } }))).toBe(false);
    expect(isDependencyError(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isDependencyError(new TypeError('x is undefined'))).toBe(false);
  });
});

describe('the node registry format', () => {
  it('keeps its documented key layout', () => {
    const keys = registryKeys('cadfleet');
    expect([keys.nodes, keys.node('api-1'), keys.events]).toEqual(['cadfleet:nodes', 'cadfleet:node:api-1', 'cadfleet:nodes:events']);
  });
  it('parses a node hash and keeps role-specific fields apart', () => {
    const record = parseNodeRecord({ id: 's-1', role: 'streamer', version: '1.2.3', host: 'h', pid: '42', address: 'http://10.0.0.5:8081', state: 'draining', startedAt: '1000', heartbeatAt: '5000', sessions: '3', load: '0.4' });
    expect(record).toEqual({ id: 's-1', role: 'streamer', version: '1.2.3', host: 'h', pid: 42, address: 'http://10.0.0.5:8081', state: 'draining', startedAt: 1000, heartbeatAt: 5000, extra: { sessions: '3', load: '0.4' } });
    expect(parseNodeRecord({})).toBeUndefined();
  });
});

describe('dependency health (the api 503 gate)', () => {
  it('asks S3 again only after a while once it answered, and every round while it fails', async () => {
    let clock = 0;
    let calls = 0;
    let failing = false;
    const check = okForAWhile(
      async () => {
        calls++;
        if (failing) throw new Error('connect ECONNREFUSED');
      },
      15_000,
      () => clock,
    );
    await check();
    clock = 14_999;
    await check();
    expect(calls).toBe(1);
    clock = 15_000;
    failing = true;
    await expect(check()).rejects.toThrow(/ECONNREFUSED/);
    clock = 17_000;
    await expect(check()).rejects.toThrow(/ECONNREFUSED/);
    expect(calls).toBe(3);
    failing = false;
    clock = 19_000;
    await check();
    clock = 20_000;
    await check();
    expect(calls).toBe(4);
  });

  it('closes the gate at once on a refused dependency, and on a slow one only after two slow checks in a row', async () => {
    let mode: 'ok' | 'slow' | 'refused' = 'ok';
    const health = createHealth(
      {
        s3: () =>
          mode === 'ok' ? Promise.resolve() : mode === 'slow' ? new Promise(() => undefined) : Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
      },
      { timeoutMs: 50 },
    );
    await health.check();
    expect(health.down()).toEqual([]);
    mode = 'slow';
    await health.check();
    // One slow answer on a loaded host: reported (readyz), not an outage for the gate.
    expect(health.current()[0]).toMatchObject({ ok: false, timedOut: true, failures: 1 });
    expect(health.down()).toEqual([]);
    await health.check();
    expect(health.down().map((d) => d.name)).toEqual(['s3']);
    mode = 'ok';
    await health.check();
    expect(health.down()).toEqual([]);
    mode = 'refused';
    await health.check();
    expect(health.down()).toMatchObject([{ name: 's3', failures: 1, timedOut: false }]);
  });

  it('does not take a stall of its own process for a slow dependency: an answer that arrived meanwhile is read first', async () => {
    // The dependency: another process, which answers while this one is stalled. It writes its
    // answer, then a marker file: the stall below ends only once the answer is known to be
    // waiting in the pipe, however long a starved machine takes to run the peer.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-health-'));
    const peer = spawn('sh', ['-c', 'n=0; while read line; do echo pong; n=$((n+1)); : > "$0/$n"; done', dir], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      let sent = 0;
      const health = createHealth({ peer: () => new Promise((resolve) => (peer.stdout.once('data', resolve), peer.stdin.write('ping\n'), sent++)) }, { timeoutMs: 100 });
      const answered = (n: number): boolean => fs.existsSync(path.join(dir, String(n)));
      // The peer's shell starts on a machine that may be starved (the official CI runs this tier
      // beside the fleet's): its first answers may miss the deadline. Until one is on time, then
      // until every ping has its answer, so that none is left over for the rounds below.
      const warm = Date.now() + 30_000;
      while (!(await health.check())[0]!.ok) if (Date.now() > warm) throw new Error('the peer did not answer on time in 30 s');
      while (!answered(sent)) if (Date.now() > warm) throw new Error('the peer did not answer in 30 s');
      await new Promise((r) => setTimeout(r, 100));
      for (let i = 0; i < 3; i++) {
        const round = health.check();
        const ping = sent;
        // This process stalls past the deadline (a long GC pause, a starved CPU) while the
        // answer arrives.
        const deadline = Date.now() + 200;
        const giveUp = Date.now() + 30_000;
        while (Date.now() < deadline || !answered(ping)) {
          if (Date.now() > giveUp) throw new Error(`round ${i}: the peer did not answer in 30 s`);
        }
        expect(await round, `round ${i}`).toMatchObject([{ name: 'peer', ok: true, failures: 0 }]);
      }
    } finally {
      peer.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives a dependency held up by the same starvation one more deadline, and times out one that stays silent', async () => {
    // Starved along with this process: the answer comes 30 ms after this process wakes from a
    // stall three deadlines long.
    let answer = (): void => undefined;
    let silent = false;
    const health = createHealth({ peer: () => new Promise<void>((resolve) => (answer = silent ? () => undefined : resolve)) }, { timeoutMs: 50 });
    const stall = (ms: number): void => {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        // busy
      }
    };
    const round = health.check();
    stall(150);
    setTimeout(() => answer(), 30);
    expect(await round).toMatchObject([{ name: 'peer', ok: true, failures: 0 }]);
    // The second deadline is the last: a dependency that stays silent after it is reported slow,
    // and the gate closes on the second slow round as it does without a stall.
    silent = true;
    for (const failures of [1, 2]) {
      const started = performance.now();
      const slow = health.check();
      stall(150);
      expect(await slow).toMatchObject([{ name: 'peer', ok: false, timedOut: true, failures }]);
      expect(performance.now() - started).toBeGreaterThanOrEqual(200);
    }
    expect(health.down().map((d) => d.name)).toEqual(['peer']);
  });
});
