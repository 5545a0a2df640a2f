// Runs the real terraform on a synthesized stack without an AWS account: fake credentials, skip
// flags and a local backend come from an override file that exists only in the test's copy of
// the stack. The AWS provider comes from a filesystem mirror where this machine has one (then
// nothing reaches the network), else from the registry (cached in .cadfleet/tools).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withProjectTools } from '../../../cli/src/tools';

export const AWS_PROVIDER_VERSION = '5.100.0';
const PROVIDER_PATH = `registry.terraform.io/hashicorp/aws/${AWS_PROVIDER_VERSION}/linux_amd64`;

/** Where machines here keep provider mirrors, most specific first. */
export function mirrorCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = os.homedir();
  return [
    env.CADFLEET_TF_PROVIDER_MIRROR,
    '/opt/tf-plugins',
    path.join(home, '.terraform.d', 'plugins'),
    path.join(env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'terraform', 'plugins'),
    '/usr/local/share/terraform/plugins',
    '/usr/share/terraform/plugins',
  ].filter((p): p is string => typeof p === 'string' && p !== '');
}

/** The mirror directory that holds hashicorp/aws at the version the bindings were built for, if this machine has one. */
export function findProviderMirror(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of mirrorCandidates(env)) {
    const providerDir = path.join(dir, PROVIDER_PATH);
    if (fs.existsSync(providerDir) && fs.readdirSync(providerDir).some((f) => f.startsWith('terraform-provider-aws'))) return dir;
  }
  return null;
}

const repoRoot = path.resolve(import.meta.dirname, '../../..');

/** Where the provider comes from when no mirror does: the registry, through a cache in the checkout. */
export const PROVIDER_CACHE = path.join(repoRoot, '.cadfleet', 'tools', 'terraform-plugins');

/**
 * The terraform CLI configuration for the tests: the AWS provider from the mirror only, where this
 * machine has one (no network), else from the registry into a plugin cache, so that a machine
 * without a mirror plans too (and downloads the provider once).
 */
export function providerCliConfig(mirror: string | null, cacheDir: string = PROVIDER_CACHE): string {
  if (mirror === null) return `plugin_cache_dir = ${JSON.stringify(cacheDir)}\n`;
  return `provider_installation {
  filesystem_mirror {
    path    = ${JSON.stringify(mirror)}
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
`;
}

/** Writes the CLI configuration to `file`; says where the provider comes from. */
export function writeProviderCliConfig(file: string, env: NodeJS.ProcessEnv = process.env): { file: string; source: string } {
  const mirror = findProviderMirror(env);
  if (mirror === null) fs.mkdirSync(PROVIDER_CACHE, { recursive: true });
  fs.writeFileSync(file, providerCliConfig(mirror));
  return {
    file,
    source:
      mirror ??
      `the registry (no mirror of hashicorp/aws ${AWS_PROVIDER_VERSION} in ${mirrorCandidates(env).join(', ')}; set CADFLEET_TF_PROVIDER_MIRROR to one, ` +
        `made on a machine with network by \`terraform providers mirror -platform=linux_amd64 DIR\` in a synthesized stack)`,
  };
}

/** PATH with the checkout's tools first: terraform from .cadfleet/tools when setup installed it there. */
export const terraformPath = (): string => withProjectTools(process.env.PATH, repoRoot);

/** Terraform on PATH, 1.10 or later (the S3 backend's use_lockfile). */
export async function terraformVersion(): Promise<string> {
  const result = await run('terraform', ['version', '-json'], { cwd: os.tmpdir(), env: { ...process.env, PATH: terraformPath(), CHECKPOINT_DISABLE: '1' } });
  if (result.code !== 0) throw new Error('terraform is not on PATH nor in .cadfleet/tools: run bash scripts/ensure-terraform.sh (setup\'s terraform step), or install Terraform 1.10 or later');
  const version = (JSON.parse(result.stdout) as { terraform_version: string }).terraform_version;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < 1 || (major === 1 && minor < 10)) throw new Error(`terraform ${version} is too old: 1.10 or later is needed for the S3 backend's use_lockfile`);
  return version;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

function run(file: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(file, args, { cwd: options.cwd, env: options.env, maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
  });
}

export interface OfflineTerraform {
  /** Where `init` takes the AWS provider from: the mirror's path, or the registry and why. */
  providerSource: string;
  /** Runs terraform in the stack directory; never throws, check `code`. */
  run(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<RunResult>;
  /** Runs terraform and throws with its output when it fails. */
  ok(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<RunResult>;
}

/**
 * Prepares `stackDir` for offline runs: a CLI config that installs the AWS provider from the
 * mirror only, and `offline_override.tf.json` with fake credentials, the skip flags and a
 * local backend in `workDir`. Nothing reaches the network or the real AWS credentials.
 */
export function offlineTerraform(stackDir: string, workDir: string, options: { backend?: 'local' | 'as-synthesized' } = {}): OfflineTerraform {
  const cliConfig = path.join(workDir, 'terraform.rc');
  const provider = writeProviderCliConfig(cliConfig);
  const override: Record<string, unknown> = {
    provider: {
      aws: [
        {
          access_key: 'AKIAIOSFODNN7EXAMPLE',
          secret_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
          skip_credentials_validation: true,
          skip_requesting_account_id: true,
          skip_metadata_api_check: true,
        },
      ],
    },
  };
  // The provider's version is the synthesized one (the binding's, exactly): the plan is of what
  // production would init, from the mirror or the registry alike.
  if ((options.backend ?? 'local') === 'local') {
    override.terraform = { backend: { local: { path: path.join(workDir, 'terraform.tfstate') } } };
  }
  fs.writeFileSync(path.join(stackDir, 'offline_override.tf.json'), JSON.stringify(override, null, 2));

  // A clean environment: real AWS credentials or profiles on this machine must not leak in.
  const env: NodeJS.ProcessEnv = {
    PATH: terraformPath(),
    HOME: workDir,
    TF_CLI_CONFIG_FILE: cliConfig,
    TF_IN_AUTOMATION: '1',
    TF_INPUT: '0',
    CHECKPOINT_DISABLE: '1',
    AWS_EC2_METADATA_DISABLED: 'true',
    TF_DATA_DIR: path.join(stackDir, '.terraform'),
  };
  const runner: OfflineTerraform = {
    providerSource: provider.source,
    run: (args, extraEnv = {}) => run('terraform', [...args.slice(0, 1), '-no-color', ...args.slice(1)], { cwd: stackDir, env: { ...env, ...extraEnv } }),
    async ok(args, extraEnv) {
      const result = await runner.run(args, extraEnv);
      if (result.code !== 0) {
        const from = args[0] === 'init' ? ` (the AWS provider from ${provider.source})` : '';
        throw new Error(`terraform ${args.join(' ')} failed (${result.code})${from}:\n${result.stderr}\n${result.stdout.slice(-4000)}`);
      }
      return result;
    },
  };
  return runner;
}

/** Terraform wraps diagnostics at 78 columns; compare messages with whitespace collapsed. */
export const oneLine = (text: string): string => text.replace(/\s+/g, ' ');
