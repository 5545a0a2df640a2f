import { type NodeRecord, hostPort } from '../shared/registry';

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface Routing {
  /** `upstream cadfleet_api { ... }` with the live, active api nodes. */
  apiUpstream: string;
  /** `map` lines: streamer node id -> address, draining ones included (their sessions go on). */
  streamersMap: string;
  apiServers: string[];
  streamers: Array<[string, string]>;
}

/**
 * nginx routing from the node registry. api nodes that drain leave the upstream at once (a
 * graceful reload lets their requests finish); streamers stay in the map while they drain,
 * since the sessions they hold keep using their path until they end or move.
 */
export function renderRouting(nodes: NodeRecord[], fallbackApi: string[]): Routing {
  const apiServers = [...new Set(nodes.filter((n) => n.role === 'api' && n.state === 'active').map((n) => hostPort(n.address)).filter((a): a is string => !!a))].sort();
  // nginx refuses an upstream with no server: with no live api node, keep the deployed list.
  const servers = apiServers.length ? apiServers : fallbackApi;
  const streamers = nodes
    .filter((n) => n.role === 'streamer' && SAFE_ID.test(n.id))
    .map((n): [string, string | undefined] => [n.id, hostPort(n.address)])
    .filter((e): e is [string, string] => !!e[1])
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return {
    apiServers: servers,
    streamers,
    apiUpstream: [
      '# api nodes; written by cadfleet-lb-sync from the node registry.',
      'upstream cadfleet_api {',
      '    least_conn;',
      ...servers.map((s) => `    server ${s} max_fails=2 fail_timeout=5s;`),
      '    keepalive 32;',
      '}',
      '',
    ].join('\n'),
    streamersMap: ['# node id -> address:port, written by cadfleet-lb-sync', ...streamers.map(([id, addr]) => `${id} ${addr};`), ''].join('\n'),
  };
}

/** The api servers of an upstream file the deploy seeded (the fallback when no api is live). */
export function parseUpstreamServers(text: string): string[] {
  return [...text.matchAll(/^\s*server\s+([^\s;]+)/gm)].map((m) => m[1]!);
}
