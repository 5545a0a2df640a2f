// SHA-256 of what flows through a stream, for reuse by content: taken from the one read that
// stores (api) or downloads (worker) the bytes.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/** A pass-through that hashes what flows through it: the input's SHA-256 from the one read that stores it. */
export function sha256Tap(): Transform & { hex(): string } {
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  return Object.assign(tap, { hex: () => hash.digest('hex') });
}
