// The address a node registers for other hosts (the LB) when CADFLEET_ADVERTISE_URL is unset.
// Its own module so that every role can use it without loading another role's code.
import os from 'node:os';

/** The bound address, or this host's first non-loopback IPv4 when bound to all of them. */
export function advertisedHost(bound: string): string {
  if (bound !== '0.0.0.0' && bound !== '::') return bound.includes(':') ? `[${bound}]` : bound;
  const external = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal);
  return external?.address ?? '127.0.0.1';
}
