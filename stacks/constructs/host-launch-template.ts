// Launch template shared by every cadfleet host: IMDSv2 only, an encrypted gp3 root volume,
// the instance role, the inventory tags on the instance and its volumes, and the boot script.
import { Fn, TerraformLocal, Token } from '../cdk';
import { LaunchTemplate } from '../aws';
import { isEmpty } from '../tf';
import { Construct } from 'constructs';
import { TAG_ENVIRONMENT, TAG_ROLE, type HostRole } from '../contract';
import { isToken, must, mustBeIntegerIn } from '../validate';

export interface HostLaunchTemplateProps {
  /** Template name and `Name` tag, e.g. `cadfleet-staging-api`. */
  readonly name: string;
  readonly environment: string;
  readonly role: HostRole;
  readonly imageId: string;
  /** Root device of the image (Debian's AMIs: /dev/xvda). */
  readonly rootDeviceName: string;
  readonly instanceType: string;
  /** @default 20 */
  readonly rootVolumeGb?: number;
  readonly instanceProfileArn: string;
  readonly securityGroupIds: string[];
  /** EC2 key pair; an empty string means none. @default "" */
  readonly keyName?: string;
  /** Give the host a public address (only the load balancer, in a public subnet). @default false */
  readonly publicIp?: boolean;
  /** The boot script, as plain text (encoded here). */
  readonly userData: string;
}

export function validateHostLaunchTemplateProps(props: HostLaunchTemplateProps): void {
  must(/^[A-Za-z0-9()./_-]{3,125}$/.test(props.name), 'name', 'be a launch template name (3 to 125 letters, digits, ()./_-)', props.name);
  if (!isToken(props.rootDeviceName)) must(/^\/dev\/[a-z0-9]+$/.test(props.rootDeviceName), 'rootDeviceName', 'be a device such as "/dev/xvda"', props.rootDeviceName);
  mustBeIntegerIn(props.rootVolumeGb, 'rootVolumeGb', 8, 16384);
  must(props.securityGroupIds.length > 0, 'securityGroupIds', 'name at least one security group', props.securityGroupIds);
  // EC2 refuses user-data over 16 KiB; plain text here, base64 makes it a third larger.
  if (!isToken(props.userData)) must(props.userData.length <= 12_000, 'userData', 'be at most 12000 characters', `${props.userData.length} characters`);
}

export class HostLaunchTemplate extends Construct {
  readonly template: LaunchTemplate;

  constructor(scope: Construct, id: string, props: HostLaunchTemplateProps) {
    super(scope, id);
    validateHostLaunchTemplateProps(props);
    const tags = { Name: props.name, [TAG_ENVIRONMENT]: props.environment, [TAG_ROLE]: props.role };
    const keyName = props.keyName ?? '';
    const publicIp = props.publicIp ?? false;
    // A local holds the script: Terraform fills in its references (bucket name, ...) as in
    // any string, where a function argument would need every quote escaped.
    const script = new TerraformLocal(this, 'user-data', props.userData);

    this.template = new LaunchTemplate(this, 'template', {
      name: props.name,
      description: `cadfleet ${props.role} hosts of ${props.environment}`,
      imageId: props.imageId,
      instanceType: props.instanceType,
      keyName: isToken(keyName) ? Token.asString(Fn.conditional(isEmpty(keyName), Token.nullValue(), keyName)) : keyName || undefined,
      iamInstanceProfile: { arn: props.instanceProfileArn },
      ...(publicIp
        ? { networkInterfaces: [{ deviceIndex: 0, associatePublicIpAddress: 'true', deleteOnTermination: 'true', securityGroups: props.securityGroupIds }] }
        : { vpcSecurityGroupIds: props.securityGroupIds }),
      metadataOptions: {
        httpEndpoint: 'enabled',
        // IMDSv2 only: a request forged through an app (SSRF) cannot fetch the role's credentials.
        httpTokens: 'required',
        // One hop: containers on the host cannot reach the metadata service either.
        httpPutResponseHopLimit: 1,
        instanceMetadataTags: 'enabled',
      },
      blockDeviceMappings: [
        {
          deviceName: props.rootDeviceName,
          ebs: { volumeType: 'gp3', volumeSize: props.rootVolumeGb ?? 20, encrypted: 'true', deleteOnTermination: 'true' },
        },
      ],
      tagSpecifications: ['instance', 'volume', 'network-interface'].map((resourceType) => ({ resourceType, tags })),
      tags,
      userData: Fn.base64encode(script.asString),
      updateDefaultVersion: true,
    });
  }
}
