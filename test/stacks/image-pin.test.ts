// The image the fleet runs, across plans: the synthesized staging stack, planned and partly
// applied by the real terraform with the real AWS provider against a stand-in for EC2 and SSM
// (test/stacks/helpers/aws-stand-in.ts). Its own file, so that it plans beside plan.test.ts's
// plans on the second core: both are terraform, both take about a minute.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedImageParameterName } from '../../stacks/contract';
import { type Json, type Plan, type PlannedResource, type ResourceChange } from './helpers/plan';
import { startAwsStandIn } from './helpers/aws-stand-in';
import { type OfflineTerraform, offlineTerraform, terraformVersion } from './helpers/terraform';
import { ENV, exampleVars, synthStaging } from './helpers/staging';

let workDir: string;
let stackDir: string;

beforeAll(async () => {
  await terraformVersion();
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-image-pin-'));
  stackDir = synthStaging(workDir);
}, 120_000);

afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe('the image the fleet runs, across plans', () => {
  // The lookup of Debian's newest AMI moves whenever Debian publishes one. Here EC2 and SSM are
  // a stand-in on 127.0.0.1 (test/stacks/helpers/aws-stand-in.ts) that the provider reaches
  // through an endpoints override: terraform really reads the lookup, applies the pinned
  // parameter into a local state and plans against that state. What cannot run offline is the
  // rest of the first apply (network, IAM, launch templates): the launch templates are planned,
  // not applied, so "unchanged" means planned identically, from the pinned value.
  const image = (n: number, day: string) => ({ id: `ami-0${String(n).repeat(16)}`, name: `debian-12-amd64-${day.replaceAll('-', '')}-${n}`, created: `${day}T00:00:00.000Z` });
  const OLDER = image(0, '2025-12-01');
  const FIRST = image(1, '2026-01-01');
  const NEWER = image(2, '2026-02-01');
  const PIN = 'aws_ssm_parameter.pinned-image[0]';
  let aws: Awaited<ReturnType<typeof startAwsStandIn>>;
  let pinTf: OfflineTerraform;
  let dir: string;
  let vars: string[];

  /** A copy of the synthesized stack in its own directory and state, its AWS calls going to the stand-in. */
  const standInStack = async (name: string): Promise<OfflineTerraform> => {
    const base = fs.mkdtempSync(path.join(dir, `${name}-`));
    const stack = path.join(base, 'stack');
    fs.mkdirSync(stack);
    fs.copyFileSync(path.join(stackDir, 'cdk.tf.json'), path.join(stack, 'cdk.tf.json'));
    const tf = offlineTerraform(stack, base);
    const override = path.join(stack, 'offline_override.tf.json');
    const offline = JSON.parse(fs.readFileSync(override, 'utf8')) as Json;
    offline.provider.aws[0].endpoints = [{ ec2: aws.url, ssm: aws.url }];
    fs.writeFileSync(override, JSON.stringify(offline, null, 2));
    await tf.ok(['init', '-input=false']);
    return tf;
  };

  const planAt = async (name: string, extra: string[] = []): Promise<Plan> => {
    await pinTf.ok(['plan', '-input=false', '-lock=false', ...vars, ...extra, `-out=${name}.bin`]);
    return JSON.parse((await pinTf.ok(['show', '-json', `${name}.bin`])).stdout) as Plan;
  };
  const changes = (p: Plan, type: string): ResourceChange[] => (p.resource_changes ?? []).filter((c) => c.type === type && c.mode === 'managed');
  const templateImages = (p: Plan): unknown[] => changes(p, 'aws_launch_template').map((c) => c.change.after?.image_id);
  const pinChange = (p: Plan): { actions: string[]; value: unknown } | undefined => {
    const c = (p.resource_changes ?? []).find((r) => r.address === PIN);
    return c && { actions: c.change.actions, value: c.change.after?.insecure_value };
  };
  /** What the plan read from the Debian lookup. */
  const lookedUp = (p: Plan): unknown =>
    ((p as unknown as { prior_state?: { values?: { root_module?: { resources?: PlannedResource[] } } } }).prior_state?.values?.root_module?.resources ?? []).find(
      (r) => r.address === 'data.aws_ami.debian[0]',
    )?.values.id;

  beforeAll(async () => {
    aws = await startAwsStandIn('us-east-1');
    aws.images = [OLDER, FIRST];
    dir = fs.mkdtempSync(path.join(workDir, 'pinned-image-'));
    // No ami_id: the stack looks Debian's newest up, as on a fresh account.
    const zones = path.join(dir, 'zones.tfvars');
    // The account's GitHub OIDC provider given, as in the offline plan (the stand-in answers EC2 and SSM only).
    fs.writeFileSync(zones, 'availability_zones = ["us-east-1a", "us-east-1b"]\ngithub_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"\n');
    vars = [`-var-file=${exampleVars}`, `-var-file=${zones}`];
    pinTf = await standInStack('applied');
  }, 120_000);

  afterAll(async () => {
    await aws?.close();
  });

  it('pins the newest Debian 12 AMI at the first apply, and the launch templates take it from the pin', async () => {
    const first = await planAt('first');
    expect(lookedUp(first)).toBe(FIRST.id);
    expect(pinChange(first)).toEqual({ actions: ['create'], value: FIRST.id });
    expect(templateImages(first)).toEqual([FIRST.id, FIRST.id, FIRST.id, FIRST.id]);
    // The first apply, as far as it runs offline: the pin itself.
    await pinTf.ok(['apply', '-input=false', '-lock=false', '-auto-approve', ...vars, `-target=${PIN}`]);
    expect(aws.parameters.get(pinnedImageParameterName(ENV))).toMatchObject({ type: 'String', value: FIRST.id, version: 1 });
  });

  // Three plans each (about 35 s alone, beside the fleet tier on a 2-core machine up to 100 s).
  it('plans the same launch templates after Debian published a newer AMI: no change to the inputs, no change to the fleet', async () => {
    const before = await planAt('before');
    aws.images.push(NEWER);
    const later = await planAt('later');
    expect(lookedUp(later)).toBe(NEWER.id);
    expect(pinChange(later)).toEqual({ actions: ['no-op'], value: FIRST.id });
    expect(templateImages(later)).toEqual([FIRST.id, FIRST.id, FIRST.id, FIRST.id]);
    // Every launch template is planned exactly as before, known and unknown values alike.
    const templates = (p: Plan) => changes(p, 'aws_launch_template').map((c) => [c.address, c.change.actions, c.change.after, c.change.after_unknown]);
    expect(templates(later)).toEqual(templates(before));
    // Control: a fresh state (no pin yet) does take the newer image, so the lookup really moved.
    const freshTf = await standInStack('fresh');
    await freshTf.ok(['plan', '-input=false', '-lock=false', ...vars, '-out=fresh.bin']);
    const freshPlan = JSON.parse((await freshTf.ok(['show', '-json', 'fresh.bin'])).stdout) as Plan;
    expect(templateImages(freshPlan)).toEqual([NEWER.id, NEWER.id, NEWER.id, NEWER.id]);
  }, 300_000);

  it('moves the fleet when the operator says so: a new value in the parameter, a replaced pin, or ami_id', async () => {
    // `aws ssm put-parameter --overwrite`: the next plan reads it back (refresh) and the templates follow.
    const chosen = 'ami-0abcdef0123456789';
    aws.parameters.get(pinnedImageParameterName(ENV))!.value = chosen;
    const edited = await planAt('edited');
    expect(pinChange(edited)).toEqual({ actions: ['no-op'], value: chosen });
    expect(templateImages(edited)).toEqual([chosen, chosen, chosen, chosen]);
    // `-replace`: the pin is made again from the lookup, Debian's newest now.
    const replaced = await planAt('replaced', [`-replace=${PIN}`]);
    expect(pinChange(replaced)).toEqual({ actions: ['delete', 'create'], value: NEWER.id });
    expect(templateImages(replaced)).toEqual([NEWER.id, NEWER.id, NEWER.id, NEWER.id]);
    // ami_id: that image, and the pin goes (a later return to the lookup pins the then-newest).
    const own = 'ami-0fedcba9876543210';
    const explicit = await planAt('explicit', ['-var', `ami_id=${own}`]);
    expect(pinChange(explicit)?.actions).toEqual(['delete']);
    expect(templateImages(explicit)).toEqual([own, own, own, own]);
    // Only the calls this stand-in answers were made, and none wrote the pin but the apply.
    expect(aws.calls.filter((c) => c === 'ssm:PutParameter')).toHaveLength(1);
  }, 300_000);
});
