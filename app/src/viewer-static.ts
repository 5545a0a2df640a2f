// The viewer's static files from the api, for single-machine mode (CADFLEET_VIEWER_DIR). In a
// fleet nginx on the LB serves the same directory from the release.
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

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
    },
  });
}
