// The archive checks on their own: what the api reads from a zip's directory and what the worker
// extracts, against hostile archives written byte by byte.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ArchiveError, chooseRoot, extractZip, listZipFile, listZipFromRanges } from '../../app/src/shared/archive';
import { tempDir } from '../helpers/convert';
import { makeZip, type ZipEntrySpec } from '../helpers/zip';

const LIMITS = { maxEntries: 100, maxExpandedBytes: 32 * 1024 * 1024 };

function zipFile(entries: ZipEntrySpec[]): { dir: string; file: string; dest: string } {
  const dir = tempDir('cadfleet-archive-');
  const file = path.join(dir, 'upload.zip');
  fs.writeFileSync(file, makeZip(entries));
  const dest = path.join(dir, 'jobs', 'job-1', 'in');
  fs.mkdirSync(dest, { recursive: true });
  return { dir, file, dest };
}

async function refusal(p: Promise<unknown>): Promise<ArchiveError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the archive to be refused').toBeInstanceOf(ArchiveError);
  return err as ArchiveError;
}

/** Every file under `dir`, relative. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.lstatSync(path.join(dir, f)).isFile()).sort();
}

describe('archives', () => {
  it('extracts a model with its companions, folders kept, and picks the only model file as root', async () => {
    const { file, dest } = zipFile([
      { name: 'models/', data: '' },
      { name: 'models/part.obj', data: 'mtllib part.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n' },
      { name: 'models/part.mtl', data: 'newmtl a\nmap_Kd ../textures/wood.png\n' },
      { name: 'textures/wood.png', data: 'png' },
      { name: '__MACOSX/models/._part.obj', data: 'resource fork' },
    ]);
    const listing = await extractZip(file, dest, LIMITS);
    expect(listing.ignored).toBe(1);
    expect(chooseRoot(listing, undefined)).toBe('models/part.obj');
    expect(filesUnder(dest)).toEqual(['models/part.mtl', 'models/part.obj', 'textures/wood.png']);
    expect(fs.readFileSync(path.join(dest, 'models/part.mtl'), 'utf8')).toContain('map_Kd');
  });

  it('names the candidates when several model files are in it, and takes a named root', async () => {
    const { file } = zipFile([{ name: 'a/left.stp', data: 'x' }, { name: 'b/right.step', data: 'y' }, { name: 'readme.txt', data: 'z' }]);
    const listing = await listZipFile(file, LIMITS);
    const ambiguous = (() => {
      try {
        chooseRoot(listing, undefined);
      } catch (err) {
        return err as ArchiveError;
      }
      throw new Error('not refused');
    })();
    expect(ambiguous.code).toBe('archive-root-ambiguous');
    expect(ambiguous.candidates).toEqual(['a/left.stp', 'b/right.step']);
    expect(ambiguous.message).toContain('a/left.stp');
    expect(chooseRoot(listing, 'b/right.step')).toBe('b/right.step');
    expect(() => chooseRoot(listing, 'readme.txt')).toThrow(/not a model file/);
    expect(() => chooseRoot(listing, 'c/missing.stp')).toThrow(/has no file/);
    expect(() => chooseRoot({ entries: [{ name: 'notes.txt', size: 1, directory: false }], ignored: 0, expandedBytes: 1 }, undefined)).toThrow(/no model file/);
  });

  it('reads the directory through range reads alone, as the api does from S3', async () => {
    const bytes = makeZip([{ name: 'part.stl', data: 'solid x\nendsolid x\n' }, { name: 'big.bin', data: randomBytes(1024 * 1024), method: 'store' }]);
    const ranges: Array<[number, number]> = [];
    const listing = await listZipFromRanges(bytes.length, async (start, end) => {
      ranges.push([start, end]);
      return Readable.from([bytes.subarray(start, end)]);
    }, LIMITS);
    expect(listing.entries.map((e) => e.name)).toEqual(['part.stl', 'big.bin']);
    // Only the tail of the file was read, not the 1 MiB entry.
    const read = ranges.reduce((n, [s, e]) => n + (e - s), 0);
    expect(read).toBeLessThan(128 * 1024);
  });

  const hostile: Array<[string, ZipEntrySpec[], RegExp, ArchiveError['code']]> = [
    ['an entry that climbs out (zip-slip)', [{ name: '../../evil.obj', data: 'v 0 0 0' }], /unsafe path|climbs out/, 'archive-invalid'],
    ['an absolute path', [{ name: '/tmp/evil.obj', data: 'v 0 0 0' }], /absolute path|unsafe path/, 'archive-invalid'],
    ['a symlink', [{ name: 'part.obj', data: '/etc/passwd', symlink: true }], /symbolic link/, 'archive-invalid'],
    ['an encrypted entry', [{ name: 'part.obj', data: 'v 0 0 0', encrypted: true }], /encrypted/, 'archive-invalid'],
    ['a nested archive', [{ name: 'inner.zip', data: 'PK' }], /nested archives/, 'archive-invalid'],
    ['a name twice', [{ name: 'part.obj', data: 'a' }, { name: 'part.obj', data: 'b' }], /twice/, 'archive-invalid'],
    ['too many entries', Array.from({ length: 101 }, (_, i) => ({ name: `p${i}.obj`, data: 'v' })), /101 entries; the limit is 100/, 'archive-too-large'],
    ['a declared expanded size over the limit', [{ name: 'bomb.stl', zeros: 64 * 1024 * 1024 }], /expands to more than/, 'archive-too-large'],
  ];
  for (const [what, entries, message, code] of hostile) {
    it(`refuses ${what} when listing and when extracting, writing nothing outside its folder`, async () => {
      const { dir, file, dest } = zipFile(entries);
      const listed = await refusal(listZipFile(file, LIMITS));
      expect(listed.code).toBe(code);
      expect(listed.message).toMatch(message);
      const extracted = await refusal(extractZip(file, dest, LIMITS));
      expect(extracted.code).toBe(code);
      // Nothing but the archive and the job's own folder under the test's dir.
      const outside = filesUnder(dir).filter((f) => f !== 'upload.zip' && !f.startsWith('jobs/job-1/in/'));
      expect(outside).toEqual([]);
      expect(fs.existsSync(path.join(dir, 'evil.obj'))).toBe(false);
    });
  }

  it('refuses a file that is not a zip at all', async () => {
    const dir = tempDir('cadfleet-archive-');
    const file = path.join(dir, 'upload.zip');
    fs.writeFileSync(file, Buffer.from('this is a STEP file renamed .zip\n'.repeat(20)));
    const err = await refusal(listZipFile(file, LIMITS));
    expect(err.message).toMatch(/not a readable zip archive/);
  });

  it('stops a deflate bomb whose header lies about its size at the limit, with flat memory', async () => {
    // 256 MiB of zeros in about 256 KiB, declared as 16 MiB (under the 32 MiB limit).
    const { file, dest } = zipFile([{ name: 'bomb.stl', zeros: 256 * 1024 * 1024, declaredSize: 16 * 1024 * 1024 }]);
    expect(fs.statSync(file).size).toBeLessThan(1024 * 1024);
    const before = process.memoryUsage().rss;
    const err = await refusal(extractZip(file, dest, LIMITS));
    expect(err.code).toBe('archive-invalid');
    expect(err.message).toMatch(/more bytes than its header/);
    const written = filesUnder(dest).reduce((n, f) => n + fs.statSync(path.join(dest, f)).size, 0);
    expect(written).toBeLessThanOrEqual(LIMITS.maxExpandedBytes);
    expect(process.memoryUsage().rss - before).toBeLessThan(128 * 1024 * 1024);
  });
});
