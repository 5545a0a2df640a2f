// Webhook URL checks (SSRF) and signatures on their own.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { postWebhook } from '../../app/src/worker/webhooks';
import { signatureHeader, verifySignature } from '../../app/src/shared/webhooks/sign';
import { addressRefusal, checkWebhookUrl, resolveWebhookUrl } from '../../app/src/shared/webhooks/ssrf';

const STRICT = { allowNetworks: [], allowHttp: false };

describe('webhook URLs', () => {
  it('refuses loopback, private, link-local (the metadata service), mapped and reserved addresses', () => {
    for (const address of ['127.0.0.1', '127.9.9.9', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00:ec2::254', '::ffff:169.254.169.254', '::ffff:127.0.0.1', '224.0.0.1']) {
      expect(addressRefusal(address, STRICT), address).toMatch(/loopback, private, link-local or reserved/);
    }
    for (const address of ['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700::1111']) expect(addressRefusal(address, STRICT), address).toBeUndefined();
    expect(addressRefusal('10.213.250.7', { allowNetworks: ['10.213.250.0/24'], allowHttp: false })).toBeUndefined();
    expect(addressRefusal('10.213.251.7', { allowNetworks: ['10.213.250.0/24'], allowHttp: false })).toMatch(/private/);
  });

  it('takes https only (unless allowed), and no credentials in the URL', () => {
    expect(() => checkWebhookUrl('http://hooks.example.com/x', STRICT)).toThrow(/must use https/);
    expect(checkWebhookUrl('http://hooks.example.com/x', { ...STRICT, allowHttp: true }).host).toBe('hooks.example.com');
    expect(() => checkWebhookUrl('https://user:pw@hooks.example.com/x', STRICT)).toThrow(/user name or password/);
    expect(() => checkWebhookUrl('ftp://hooks.example.com/x', STRICT)).toThrow(/must use https/);
    expect(() => checkWebhookUrl('not a url', STRICT)).toThrow(/not a URL/);
  });

  it('judges every address a name resolves to, so a name that points inside is refused', async () => {
    const lookup = (async () => [
      { address: '93.184.216.34', family: 4 },
      { address: '169.254.169.254', family: 4 },
    ]) as unknown as typeof import('node:dns').promises.lookup;
    await expect(resolveWebhookUrl(new URL('https://rebind.example/x'), STRICT, lookup)).rejects.toThrow(/rebind.example \(169.254.169.254\)/);
    await expect(resolveWebhookUrl(new URL('https://[::1]/x'), STRICT)).rejects.toThrow(/loopback/);
    await expect(resolveWebhookUrl(new URL('https://169.254.169.254/latest/meta-data/'), STRICT)).rejects.toThrow(/link-local/);
  });

  it('never connects to a refused address at delivery, even when the URL was accepted before', async () => {
    let hits = 0;
    const server = http.createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const refused = await postWebhook(`http://localhost:${port}/hook`, '{}', {}, { allowNetworks: [], allowHttp: true }, 2000);
      expect(refused.error).toMatch(/webhooks may not call localhost/);
      expect(hits).toBe(0);
      const allowed = await postWebhook(`http://127.0.0.1:${port}/hook`, '{}', {}, { allowNetworks: ['127.0.0.1/32'], allowHttp: true }, 2000);
      expect(allowed).toEqual({ status: 200 });
      expect(hits).toBe(1);
    } finally {
      server.close();
    }
  });
});

describe('webhook signatures', () => {
  const secret = 'whsec_test';
  const body = '{"id":"evt_1","type":"model.ready"}';

  it('verifies the HMAC over the timestamp and the raw body, in the header shape Stripe uses', () => {
    const header = signatureHeader(secret, body, 1_700_000_000);
    expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(verifySignature(secret, body, header, 300, 1_700_000_100)).toBe(true);
  });

  it('refuses another body, another secret, a replay after the tolerance and a missing header', () => {
    const header = signatureHeader(secret, body, 1_700_000_000);
    expect(verifySignature(secret, body.replace('ready', 'failed'), header, 300, 1_700_000_000)).toBe(false);
    expect(verifySignature('whsec_other', body, header, 300, 1_700_000_000)).toBe(false);
    expect(verifySignature(secret, body, header, 300, 1_700_000_301)).toBe(false);
    expect(verifySignature(secret, body, undefined)).toBe(false);
    expect(verifySignature(secret, body, 't=abc,v1=00')).toBe(false);
  });
});
