// The test tiers of `npm test` (scripts/test.ts), by folder. Every test file is in exactly one
// tier (test/scripts/test-tiers.test.ts checks it against vitest's own listing).

/**
 * The app's test suites: what runs on the hosts (the service, the converter, the streamer, the
 * app's own modules). They run on the Node the release bundles (scripts/test-node24.ts), the
 * only Node the app runs on.
 */
export const APP_SUITES = ['test/app', 'test/service', 'test/converter', 'test/streamer'];

/** The fleet tier: the local fleet's scenarios, one fleet boot. */
export const FLEET_SUITE = 'test/fleet';

/** vitest arguments of the toolkit tier: everything else, on this machine's Node. */
export const TOOLKIT_ARGS = ['--exclude', `${FLEET_SUITE}/**`, ...APP_SUITES.flatMap((suite) => ['--exclude', `${suite}/**`])];
