/**
 * Quotes one word for a POSIX shell (ssh hands the remote command to the login shell).
 *
 * Not zx's `quote`: that one writes bash's `$'...'` for any word with a space or a quote in it,
 * and these words are read by `sh -c` on the hosts (`sudo -u cadfleet sh -c ...`, the upgrade's
 * and the run key's scripts), which is dash on Debian 12; dash 0.5.12 does not know `$'...'`.
 * Single quotes are read the same by every POSIX shell.
 */
export const shellQuote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;
