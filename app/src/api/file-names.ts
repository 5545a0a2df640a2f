// Checks on the names and types of uploaded files, before a byte is stored.
import { SUPPORTED_EXTENSIONS } from '../converter/formats';
import { HttpError } from '../shared/http-errors';

export const QUALITIES = ['coarse', 'normal', 'fine'] as const;
export type Quality = (typeof QUALITIES)[number];

/**
 * The name is only ever a label (object keys use the model id), but it travels into manifests,
 * logs and download headers, so anything that looks like a path is refused, not rewritten.
 */
export function checkUploadName(name: string | undefined): string {
  if (name === undefined || name.trim() === '') {
    throw new HttpError(400, 'missing_file_name', 'the file part has no file name; send it as filename="model.step"');
  }
  if (name.length > 255) throw new HttpError(400, 'invalid_file_name', `the file name must be at most 255 characters, got ${name.length}`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new HttpError(400, 'invalid_file_name', 'the file name contains control characters');
  // Bytes that are not UTF-8 reach us as U+FFFD (the multipart parser decodes names as UTF-8),
  // and a lone surrogate from JSON cannot be stored: refuse both rather than keep a garbled label.
  if (name.includes('\uFFFD') || Buffer.from(name, 'utf8').toString('utf8') !== name) {
    throw new HttpError(400, 'invalid_file_name', 'the file name is not valid UTF-8; send it UTF-8 encoded (or as filename*=UTF-8\'\'<percent-encoded name>)');
  }
  if (name.includes('/') || name.includes('\\') || name === '.' || name === '..') {
    throw new HttpError(400, 'invalid_file_name', `the file name ${JSON.stringify(name)} looks like a path; upload the file under a plain name such as "part.step"`);
  }
  return name;
}

/** The lowercase extension when it is accepted; 415 otherwise. */
export function acceptedFormat(name: string, accepted: readonly string[] = SUPPORTED_EXTENSIONS): string {
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
  if (!accepted.includes(ext)) {
    throw new HttpError(
      415,
      'unsupported_type',
      `${ext ? `".${ext}" files are` : 'files without an extension are'} not supported; accepted: ${accepted.map((e) => `.${e}`).join(' ')}`,
    );
  }
  return ext;
}

export function checkQuality(value: unknown): Quality {
  if (value === undefined || value === '') return 'normal';
  if (typeof value === 'string' && (QUALITIES as readonly string[]).includes(value)) return value as Quality;
  throw new HttpError(400, 'invalid_quality', `quality must be one of ${QUALITIES.join(', ')}, got ${JSON.stringify(value)}`);
}
