// The viewer's static files from the api, for single-machine mode (CADFLEET_VIEWER_DIR). In a
// fleet nginx on the LB serves the same directory from the release.
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * The viewer's Content-Security-Policy, also sent by nginx on the LB (role nginx_lb,
 * `nginx_lb_viewer_csp`; the fleet test compares them). The meshopt decoder compiles
 * WebAssembly ('wasm-unsafe-eval'); stream URLs may name a streamer's own address
 * (single-machine mode), hence ws: and wss: in connect-src.
 */
export const VIEWER_CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export async function viewerRoutes(app: FastifyInstance, dir: string): Promise<void> {
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    // Only the files the build wrote, listed once at start: no catch-all route next to /api.
    wildcard: false,
    index: ['index.html'],
    setHeaders(reply, file) {
      // index.html names the bundle; it must not be cached across releases.
      reply.header('cache-control', file.endsWith('.html') ? 'no-cache' : 'public, max-age=300');
      reply.header('x-content-type-options', 'nosniff');
      reply.header('content-security-policy', VIEWER_CSP);
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
    },
  });
}
