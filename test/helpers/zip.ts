// Zip archives written byte by byte (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16), so that a test can
// make the hostile ones no zip tool would: `..` and absolute names, symlink entries, the
// encrypted flag, duplicate names, sizes that lie, and deflate bombs (about 1000:1).
import zlib from 'node:zlib';

export interface ZipEntrySpec {
  name: string;
  /** The content; or `zeros` bytes of 0 (a deflate bomb). */
  data?: Buffer | string;
  zeros?: number;
  /** deflate (default) or stored. */
  method?: 'deflate' | 'store';
  /** Sets the "encrypted" flag (the content itself is left plain). */
  encrypted?: boolean;
  /** A symbolic link whose target is `data`. */
  symlink?: boolean;
  /** The uncompressed size the headers claim, when it should lie. */
  declaredSize?: number;
}

function deflateZeros(total: number): { compressed: Buffer; crc: number } {
  const zeros = Buffer.alloc(total);
  return { compressed: zlib.deflateRawSync(zeros, { level: 9 }), crc: zlib.crc32(zeros) };
}

export function makeZip(entries: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    let compressed: Buffer;
    let crc: number;
    let size: number;
    const method = e.method === 'store' ? 0 : 8;
    if (e.zeros !== undefined) {
      if (method !== 8) throw new Error('zeros are deflated');
      ({ compressed, crc } = deflateZeros(e.zeros));
      size = e.zeros;
    } else {
      const raw = Buffer.from(e.data ?? '');
      crc = zlib.crc32(raw);
      size = raw.length;
      compressed = method === 8 ? zlib.deflateRawSync(raw) : raw;
    }
    const declared = e.declaredSize ?? size;
    const flags = (e.encrypted ? 1 : 0) | 0x800; // bit 11: the name is UTF-8
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(declared, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, compressed);

    const mode = e.symlink ? 0o120777 : e.name.endsWith('/') ? 0o40755 : 0o100644;
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix, so the mode in the external attributes counts
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(flags, 8);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt16LE(0, 12);
    cd.writeUInt16LE(0x21, 14);
    cd.writeUInt32LE(crc >>> 0, 16);
    cd.writeUInt32LE(compressed.length, 20);
    cd.writeUInt32LE(declared, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE((mode << 16) >>> 0, 38);
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    offset += local.length + name.length + compressed.length;
  }
  const cdBytes = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cdBytes, end]);
}
