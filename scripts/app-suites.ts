/**
 * The app's test suites: what runs on the hosts (the service, the converter, the streamer, the
 * app's own modules). They run on the Node the release bundles (scripts/test-node24.ts), the
 * only Node the app runs on; the toolkit tier (scripts/test.ts) leaves them out.
 */
export const APP_SUITES = ['test/app', 'test/service', 'test/converter', 'test/streamer'];
