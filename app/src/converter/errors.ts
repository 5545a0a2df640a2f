import type { ConvertErrorCode } from './types';

/** A conversion failure with a message meant for the person who uploaded the file. */
export class ConvertError extends Error {
  constructor(
    readonly code: ConvertErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ConvertError';
  }
}

export function toConvertError(err: unknown): ConvertError {
  if (err instanceof ConvertError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // Emscripten modules abort with RuntimeError/`Aborted(...)` on inputs they cannot parse;
  // out-of-memory inside WebAssembly surfaces as a RangeError or an abort mentioning memory.
  if (/out of memory|Cannot enlarge memory|Array buffer allocation failed|Invalid typed array length/i.test(message)) {
    return new ConvertError('memory', `the conversion ran out of memory (${message})`);
  }
  return new ConvertError('internal', `the converter failed unexpectedly: ${message}`);
}
