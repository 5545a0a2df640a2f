// Props validation shared by the constructs: pure checks that throw
// "`<name>` must <requirement>, got <value>". Values that are Terraform tokens are only
// known at plan time; variable validation blocks check those, so they are skipped here.
import { Token } from './cdk';

export class PropsError extends Error {
  override name = 'PropsError';
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
}

/** Throws unless `ok`; `got` is the offending value. */
export function must(ok: boolean, name: string, requirement: string, got: unknown): void {
  if (!ok) throw new PropsError(`\`${name}\` must ${requirement}, got ${show(got)}`);
}

/** True when the value is only known at plan time. */
export const isToken = (value: unknown): boolean => Token.isUnresolved(value);

/** Checks a whole number in [min, max] unless it is a token. */
export function mustBeIntegerIn(value: number | undefined, name: string, min: number, max: number): void {
  if (value === undefined || isToken(value)) return;
  must(Number.isInteger(value) && value >= min && value <= max, name, `be a whole number from ${min} to ${max}`, value);
}
