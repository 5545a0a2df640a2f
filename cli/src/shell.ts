/** Quotes one word for a POSIX shell (ssh hands the remote command to the login shell). */
export const shellQuote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;
