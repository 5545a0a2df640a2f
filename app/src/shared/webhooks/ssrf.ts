// Webhook URLs come from API clients and are fetched from inside the fleet: without a check, a
// client could make a worker call the instance metadata service, Redis, or any private host
// (server-side request forgery). A URL is checked when it is registered (its literal address or
// every address its name resolves to), and again at every delivery, where the connection goes
// only to an address the check passed (a name that resolves elsewhere later, DNS rebinding,
// gains nothing). Redirects are never followed.
import dns from 'node:dns';
import net from 'node:net';

/** Ranges no webhook may reach: this host, private networks, link-local (the metadata service), and the like. */
const DENIED: Array<[string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.0.2.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['198.51.100.0', 24, 'ipv4'],
  ['203.0.113.0', 24, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'],
  ['100::', 64, 'ipv6'],
  ['2001:db8::', 32, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
];

export interface WebhookPolicy {
  /** CIDRs allowed despite the list above (a receiver on the fleet's own network, a test's on loopback). */
  allowNetworks: string[];
  /** Plain http:// URLs (tests, a receiver inside the VPC); https only otherwise. */
  allowHttp: boolean;
}

export class WebhookUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookUrlError';
  }
}

function blockList(ranges: Array<[string, number, 'ipv4' | 'ipv6']>): net.BlockList {
  const list = new net.BlockList();
  for (const [address, prefix, family] of ranges) list.addSubnet(address, prefix, family);
  return list;
}

const denied = blockList(DENIED);

export function parseCidr(cidr: string): [string, number, 'ipv4' | 'ipv6'] {
  const [address, bits] = cidr.split('/');
  const family = net.isIP(address ?? '');
  const prefix = Number(bits ?? (family === 6 ? 128 : 32));
  if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) throw new Error(`not a CIDR: ${JSON.stringify(cidr)}`);
  return [address!, prefix, family === 6 ? 'ipv6' : 'ipv4'];
}

/** Why an address may not be called, or undefined when it may. */
export function addressRefusal(address: string, policy: WebhookPolicy): string | undefined {
  let family = net.isIP(address);
  if (!family) return `${address} is not an IP address`;
  // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it is.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) {
    address = mapped[1]!;
    family = 4;
  }
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (policy.allowNetworks.length && blockList(policy.allowNetworks.map(parseCidr)).check(address, type)) return undefined;
  if (denied.check(address, type)) return `${address} is a loopback, private, link-local or reserved address`;
  return undefined;
}

/** Checks a URL's form: scheme, no credentials, a host. Returns the URL. */
export function checkWebhookUrl(raw: string, policy: WebhookPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookUrlError(`${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
    throw new WebhookUrlError(`webhook URLs must use https, got ${url.protocol.replace(':', '')}`);
  }
  if (url.username || url.password) throw new WebhookUrlError('a webhook URL must not carry a user name or password; authenticate the request by its signature');
  if (!url.hostname) throw new WebhookUrlError('the webhook URL has no host');
  if (raw.length > 2048) throw new WebhookUrlError('the webhook URL is longer than 2048 characters');
  return url;
}

const hostOf = (url: URL): string => url.hostname.replace(/^\[|\]$/g, '');

/** Every address the URL's host stands for, each checked; refused if any one is not allowed. */
export async function resolveWebhookUrl(url: URL, policy: WebhookPolicy, lookup = dns.promises.lookup): Promise<string[]> {
  const host = hostOf(url);
  const addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true }).catch((err: NodeJS.ErrnoException) => {
    throw new WebhookUrlError(`the webhook host ${host} does not resolve (${err.code ?? err.message})`);
  })).map((a) => a.address);
  for (const address of addresses) {
    const why = addressRefusal(address, policy);
    if (why) throw new WebhookUrlError(`webhooks may not call ${host === address ? address : `${host} (${address})`}: ${why}`);
  }
  return addresses;
}

/**
 * A `lookup` for http(s).request that answers only with checked addresses: the delivery connects
 * to what was judged, whatever the name resolves to a moment later.
 */
export function guardedLookup(policy: WebhookPolicy): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { all: true, verbatim: true, family: (options as dns.LookupOptions).family ?? 0 }, (err, addresses) => {
      if (err) return (callback as (e: Error | null, a: string, f: number) => void)(err, '', 0);
      const list = addresses as dns.LookupAddress[];
      const bad = list.map((a) => addressRefusal(a.address, policy)).find((why) => why !== undefined);
      const cb = callback as unknown as (e: Error | null, a: string | dns.LookupAddress[], f?: number) => void;
      if (bad || list.length === 0) return cb(new WebhookUrlError(`webhooks may not call ${hostname}: ${bad ?? 'no address'}`), '', 0);
      if ((options as dns.LookupAllOptions).all) return cb(null, list);
      return cb(null, list[0]!.address, list[0]!.family);
    });
  };
}
