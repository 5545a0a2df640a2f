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

/**
 * The line the fleet tier prints once its first deploy has ended (test/fleet/local-fleet.test.ts):
 * `npm test` then starts the background tiers beside it.
 */
export const FIRST_DEPLOY_ENDED = 'fleet: the first deploy has ended';

/**
 * The plans tier: the stacks' offline terraform plans, on this machine's Node. Two minutes of
 * both cores and no deadline shorter than a terraform run, so `npm test` runs them in the
 * background beside the fleet tier, after the app tier.
 */
export const PLAN_SUITES = ['test/stacks/plan.test.ts', 'test/stacks/image-pin.test.ts'];

/** vitest arguments of the toolkit tier: everything else, on this machine's Node. */
export const TOOLKIT_ARGS = ['--exclude', `${FLEET_SUITE}/**`, ...[...APP_SUITES.map((suite) => `${suite}/**`), ...PLAN_SUITES].flatMap((glob) => ['--exclude', glob])];
