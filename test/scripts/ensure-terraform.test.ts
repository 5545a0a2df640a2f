// scripts/ensure-terraform.sh, setup's terraform step, run alone on a machine whose PATH has no
// terraform. HashiCorp's release site is not reachable from here, so a made-up release stands
// in for it: a file:// "site" with a zip holding a stand-in terraform, its SHA256SUMS and a
// signature by a key made for the test, which the test's copy of the checkout ships in place of
// HashiCorp's. Each run happens in such a copy, so the real checkout's .cadfleet/ is untouched.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCRIPT = path.join(ROOT, 'scripts/ensure-terraform.sh');
const VERSION = /^TERRAFORM_VERSION=(\S+)$/m.exec(fs.readFileSync(SCRIPT, 'utf8'))![1]!;
const PLATFORM = `linux_${process.arch === 'arm64' ? 'arm64' : 'amd64'}`;
const HASHICORP_FINGERPRINT = 'C874011F0AB405110D02105534365D9472D7468F';

/** A zip with one executable file, stored (the format unzip reads; no zip tool needed). */
function zipOne(name: string, data: Buffer): Buffer {
  const crc = zlib.crc32(data);
  const fileName = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(fileName.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix, so the mode below counts
  central.writeUInt16LE(20, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(fileName.length, 28);
  central.writeUInt32LE((0o100755 << 16) >>> 0, 38);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + fileName.length, 12);
  end.writeUInt32LE(local.length + fileName.length + data.length, 16);
  return Buffer.concat([local, fileName, data, central, fileName, end]);
}

const fakeTerraform = (version: string): string => `#!/bin/sh\n[ "$1" = version ] && echo "Terraform v${version}" && echo "on ${PLATFORM}"\nexit 0\n`;

let tmp: string;
let gnupg: string;
let testKey: string;
let site: string;

/** A PATH of links to the tools the script may use, and nothing else: no terraform. */
function pathWithout(extra: string[] = []): string {
  const bin = fs.mkdtempSync(path.join(tmp, 'bin-'));
  for (const tool of ['bash', 'sh', 'env', 'sed', 'awk', 'cat', 'mkdir', 'mktemp', 'rm', 'mv', 'ln', 'install', 'dirname', 'uname', 'curl', 'unzip', 'gpg', 'gpgv', 'sha256sum']) {
    const found = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (found) fs.symlinkSync(found, path.join(bin, tool));
  }
  return [bin, ...extra].join(':');
}

/** A copy of what the script reads of the checkout, with the test's key in place of HashiCorp's. */
function checkout(): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'checkout-'));
  fs.mkdirSync(path.join(dir, 'scripts/keys'), { recursive: true });
  fs.copyFileSync(SCRIPT, path.join(dir, 'scripts/ensure-terraform.sh'));
  fs.copyFileSync(testKey, path.join(dir, 'scripts/keys/hashicorp.asc'));
  return dir;
}

/** A release site: the zip, SHA256SUMS over it, and a detached signature by the test key. */
function release(options: { tamperZip?: boolean; tamperSums?: boolean } = {}): string {
  const dir = fs.mkdtempSync(path.join(site, 'site-'));
  const files = path.join(dir, VERSION);
  fs.mkdirSync(files);
  const zipName = `terraform_${VERSION}_${PLATFORM}.zip`;
  const zip = zipOne('terraform', Buffer.from(fakeTerraform(VERSION)));
  const sums = path.join(files, `terraform_${VERSION}_SHA256SUMS`);
  fs.writeFileSync(sums, `${crypto.createHash('sha256').update(zip).digest('hex')}  ${zipName}\n0000000000000000000000000000000000000000000000000000000000000000  terraform_${VERSION}_windows_amd64.zip\n`);
  execFileSync('gpg', ['--batch', '--homedir', gnupg, '--detach-sign', '--output', `${sums}.sig`, sums], { stdio: 'pipe' });
  fs.writeFileSync(path.join(files, zipName), options.tamperZip ? zipOne('terraform', Buffer.from(fakeTerraform(VERSION) + '# changed\n')) : zip);
  if (options.tamperSums) fs.appendFileSync(sums, '# changed after signing\n');
  return `file://${dir}`;
}

function ensure(repo: string, env: { PATH: string; CADFLEET_TERRAFORM_RELEASES_URL?: string }) {
  const r = spawnSync('bash', [path.join(repo, 'scripts/ensure-terraform.sh')], { encoding: 'utf8', env: { ...env, HOME: tmp }, timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-ensure-tf-'));
  gnupg = path.join(tmp, 'gnupg');
  site = path.join(tmp, 'sites');
  fs.mkdirSync(gnupg, { mode: 0o700 });
  fs.mkdirSync(site);
  execFileSync('gpg', ['--batch', '--homedir', gnupg, '--passphrase', '', '--quick-gen-key', 'cadfleet test release key <test@example.invalid>', 'ed25519', 'sign', 'never'], { stdio: 'pipe' });
  testKey = path.join(tmp, 'test-key.asc');
  fs.writeFileSync(testKey, execFileSync('gpg', ['--batch', '--homedir', gnupg, '--armor', '--export']));
});

afterAll(() => {
  // Signing started an agent for the test's keyring: stop it with the keyring.
  if (gnupg) spawnSync('gpgconf', ['--homedir', gnupg, '--kill', 'gpg-agent']);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('setup\'s terraform step (scripts/ensure-terraform.sh)', () => {
  it('ships HashiCorp\'s release key, the one its signed SHA256SUMS are checked against', () => {
    const shown = execFileSync('gpg', ['--batch', '--homedir', gnupg, '--with-colons', '--show-keys', path.join(ROOT, 'scripts/keys/hashicorp.asc')], { encoding: 'utf8', stdio: 'pipe' });
    expect(shown.split('\n').find((l) => l.startsWith('fpr:'))?.split(':')[9]).toBe(HASHICORP_FINGERPRINT);
    expect(shown).toContain('HashiCorp Security');
  });

  it('with no terraform on PATH, installs the pinned release into the checkout, verified, and links it for the CLI and the tests', () => {
    const repo = checkout();
    const PATH = pathWithout();
    expect(spawnSync('bash', ['-c', 'command -v terraform'], { env: { PATH } }).status).not.toBe(0);
    const first = ensure(repo, { PATH, CADFLEET_TERRAFORM_RELEASES_URL: release() });
    expect(first.code, first.out).toBe(0);
    expect(first.out).toContain(`installed terraform ${VERSION} (signature and checksum verified) in .cadfleet/tools/terraform-${VERSION}/terraform`);
    const linked = path.join(repo, '.cadfleet/tools/bin/terraform');
    expect(fs.readlinkSync(linked)).toBe(`../terraform-${VERSION}/terraform`);
    expect(execFileSync(linked, ['version'], { encoding: 'utf8' })).toContain(`Terraform v${VERSION}`);
    // Run again (setup is run again): nothing is downloaded.
    const again = ensure(repo, { PATH, CADFLEET_TERRAFORM_RELEASES_URL: 'http://127.0.0.1:9/unreachable' });
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain(`terraform ${VERSION} is installed in .cadfleet/tools/terraform-${VERSION}/terraform`);
  });

  it('uses a recent terraform on PATH as it is, and replaces one too old for use_lockfile', () => {
    const withTerraform = (version: string): string => {
      const dir = fs.mkdtempSync(path.join(tmp, 'tf-'));
      fs.writeFileSync(path.join(dir, 'terraform'), fakeTerraform(version), { mode: 0o755 });
      return dir;
    };
    const repo = checkout();
    const recent = ensure(repo, { PATH: pathWithout([withTerraform('1.12.2')]), CADFLEET_TERRAFORM_RELEASES_URL: 'http://127.0.0.1:9/unreachable' });
    expect(recent.code, recent.out).toBe(0);
    expect(recent.out).toMatch(/using terraform 1\.12\.2 from PATH/);
    expect(fs.existsSync(path.join(repo, '.cadfleet'))).toBe(false);

    const old = ensure(repo, { PATH: pathWithout([withTerraform('1.9.8')]), CADFLEET_TERRAFORM_RELEASES_URL: release() });
    expect(old.code, old.out).toBe(0);
    expect(old.out).toContain('is 1.9.8; 1.10 or newer is needed');
    expect(fs.existsSync(path.join(repo, '.cadfleet/tools/bin/terraform'))).toBe(true);
  });

  it('when the release site cannot be reached, fails and names the exact next step', () => {
    const repo = checkout();
    const r = ensure(repo, { PATH: pathWithout(), CADFLEET_TERRAFORM_RELEASES_URL: 'http://127.0.0.1:9/terraform' });
    expect(r.code).toBe(1);
    expect(r.out).toContain(`terraform is not on PATH and could not be installed: downloading http://127.0.0.1:9/terraform/${VERSION}/terraform_${VERSION}_SHA256SUMS failed`);
    expect(r.out).toContain('then run: bash scripts/setup.sh');
    expect(r.out).toContain(`into .cadfleet/tools/download/terraform-${VERSION}/ here, then run: bash scripts/ensure-terraform.sh`);
    expect(r.out).toContain(`http://127.0.0.1:9/terraform/${VERSION}/terraform_${VERSION}_${PLATFORM}.zip`);
    expect(fs.existsSync(path.join(repo, '.cadfleet/tools/bin'))).toBe(false);

    // The next step it names works: the files put there by hand are verified and installed.
    const from = new URL(release()).pathname;
    for (const f of fs.readdirSync(path.join(from, VERSION))) fs.copyFileSync(path.join(from, VERSION, f), path.join(repo, `.cadfleet/tools/download/terraform-${VERSION}`, f));
    const offline = ensure(repo, { PATH: pathWithout(), CADFLEET_TERRAFORM_RELEASES_URL: 'http://127.0.0.1:9/terraform' });
    expect(offline.code, offline.out).toBe(0);
    expect(offline.out).toContain('signature and checksum verified');
  });

  it('refuses a SHA256SUMS whose signature does not verify, and a zip that does not match it', () => {
    const badSig = checkout();
    const sig = ensure(badSig, { PATH: pathWithout(), CADFLEET_TERRAFORM_RELEASES_URL: release({ tamperSums: true }) });
    expect(sig.code).toBe(1);
    expect(sig.out).toContain("REFUSED: terraform_" + VERSION + "_SHA256SUMS has no good signature by HashiCorp's release key");
    expect(fs.existsSync(path.join(badSig, '.cadfleet/tools/bin'))).toBe(false);

    const badZip = checkout();
    const zip = ensure(badZip, { PATH: pathWithout(), CADFLEET_TERRAFORM_RELEASES_URL: release({ tamperZip: true }) });
    expect(zip.code).toBe(1);
    expect(zip.out).toMatch(new RegExp(`REFUSED: terraform_${VERSION.replace(/\./g, '\\.')}_${PLATFORM}\\.zip has SHA-256 [0-9a-f]{64}, the signed`));
    expect(fs.existsSync(path.join(badZip, `.cadfleet/tools/terraform-${VERSION}`))).toBe(false);
  });
});
