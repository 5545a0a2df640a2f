// Argument parsers the commands share (commander prints the message after the option's name).
import { InvalidArgumentError } from 'commander';

export const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a whole number of 1 or more, got ${JSON.stringify(value)}.`);
  return n;
};

/** A whole number from 1 to `max`. */
export const positiveIntUpTo =
  (max: number) =>
  (value: string): number => {
    const n = positiveInt(value);
    if (n > max) throw new InvalidArgumentError(`must be at most ${max}, got ${n}.`);
    return n;
  };
