import { describe, expect, it } from 'vitest';
import { parseUpstreamServers, renderRouting } from '../../app/src/lb-sync/render';
import { hostPort } from '../../app/src/shared/registry';
import type { NodeRecord } from '../../app/src/shared/registry';

const node = (id: string, role: string, address: string | undefined, state: NodeRecord['state'] = 'active'): NodeRecord => ({
  id, role, address, state, version: '1', host: id, pid: 1, startedAt: 0, heartbeatAt: 0, extra: {},
});

describe('LB routing from the node registry', () => {
  const nodes = [
    node('cf-api-2', 'api', 'http://10.213.0.22:8080'),
    node('cf-api-1', 'api', 'http://10.213.0.21:8080'),
    node('cf-api-3', 'api', 'http://10.213.0.23:8080', 'draining'),
    node('cf-worker-1', 'worker', 'http://10.213.0.31:9464'),
    node('cf-streamer-2', 'streamer', 'http://10.213.0.42:8090', 'draining'),
    node('cf-streamer-1', 'streamer', 'http://10.213.0.41:8090'),
    node('bad id;}', 'streamer', 'http://10.213.0.49:8090'),
  ];

  it('sends api traffic to active api nodes only, least_conn, in a stable order', () => {
    const r = renderRouting(nodes, ['10.213.0.21:8080']);
    expect(r.apiUpstream).toBe(
      '# api nodes; written by cadfleet-lb-sync from the node registry.\nupstream cadfleet_api {\n    least_conn;\n    server 10.213.0.21:8080 max_fails=2 fail_timeout=5s;\n    server 10.213.0.22:8080 max_fails=2 fail_timeout=5s;\n    keepalive 32;\n}\n',
    );
  });

  it('keeps draining streamers routable for the sessions they still hold, and drops ids nginx could misread', () => {
    expect(renderRouting(nodes, []).streamersMap).toBe('# node id -> address:port, written by cadfleet-lb-sync\ncf-streamer-1 10.213.0.41:8090;\ncf-streamer-2 10.213.0.42:8090;\n');
  });

  it('keeps the deployed api list when no api node is live (nginx refuses an empty upstream)', () => {
    expect(renderRouting([], ['10.213.0.21:8080', '10.213.0.22:8080']).apiServers).toEqual(['10.213.0.21:8080', '10.213.0.22:8080']);
  });

  it('reads host:port from advertised URLs and server lines from a seeded upstream', () => {
    expect(hostPort('https://api.internal')).toBe('api.internal:443');
    expect(hostPort('not a url')).toBeUndefined();
    expect(parseUpstreamServers('upstream x {\n    least_conn;\n    server 10.0.0.1:8080 max_fails=2;\n    server 10.0.0.2:8080;\n}')).toEqual(['10.0.0.1:8080', '10.0.0.2:8080']);
  });
});
