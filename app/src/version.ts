import pkg from '../../package.json' with { type: 'json' };

/** The release version every node reports in the registry and on /status. */
export const VERSION: string = process.env.CADFLEET_VERSION_OVERRIDE ?? pkg.version;
