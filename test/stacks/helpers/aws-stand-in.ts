// The few AWS calls the stack's image lookup and its pinned-image parameter make, answered on
// 127.0.0.1 so that terraform can read the lookup, apply the parameter and plan against that
// state with no network: EC2 DescribeImages (query protocol, XML) and SSM's parameter calls
// (JSON 1.1). The provider reaches it through `endpoints` in a test-only override file. Any
// other call fails loudly, so a test cannot pass on an answer nobody gave.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Image {
  id: string;
  name: string;
  /** ISO time; `most_recent` picks the latest. */
  created: string;
}

export interface Parameter {
  name: string;
  type: string;
  value: string;
  description?: string;
  version: number;
  tags: Array<{ Key: string; Value: string }>;
}

export interface AwsStandIn {
  url: string;
  /** What DescribeImages answers (any filter); change it between runs. */
  images: Image[];
  parameters: Map<string, Parameter>;
  /** Operations served, in order (`ec2:DescribeImages`, `ssm:PutParameter`, ...). */
  calls: string[];
  close(): Promise<void>;
}

const ACCOUNT = '123456789012';

function imagesXml(images: Image[]): string {
  const items = images
    .map(
      (i) => `<item><imageId>${i.id}</imageId><imageLocation>${ACCOUNT}/${i.name}</imageLocation><imageState>available</imageState>` +
        `<imageOwnerId>136693071363</imageOwnerId><creationDate>${i.created}</creationDate><isPublic>true</isPublic>` +
        `<architecture>x86_64</architecture><imageType>machine</imageType><name>${i.name}</name>` +
        `<rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>` +
        `<blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><snapshotId>snap-0123456789abcdef0</snapshotId>` +
        `<volumeSize>8</volumeSize><deleteOnTermination>true</deleteOnTermination><volumeType>gp3</volumeType><encrypted>false</encrypted></ebs></item></blockDeviceMapping>` +
        `<virtualizationType>hvm</virtualizationType><hypervisor>xen</hypervisor><enaSupport>true</enaSupport></item>`,
    )
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>stand-in</requestId><imagesSet>${items}</imagesSet></DescribeImagesResponse>`;
}

type Json = Record<string, unknown>;

export async function startAwsStandIn(region: string): Promise<AwsStandIn> {
  const state: Omit<AwsStandIn, 'url' | 'close'> = { images: [], parameters: new Map(), calls: [] };
  const arn = (name: string): string => `arn:aws:ssm:${region}:${ACCOUNT}:parameter${name}`;
  const describe = (p: Parameter): Json => ({ Name: p.name, ARN: arn(p.name), Type: p.type, Description: p.description, Version: p.version, Tier: 'Standard', DataType: 'text', LastModifiedDate: 1_767_225_600 });

  const ssm = (operation: string, input: Json): [number, Json] => {
    const name = String(input.Name ?? input.ResourceId ?? '');
    const found = state.parameters.get(name);
    const notFound: [number, Json] = [400, { __type: 'ParameterNotFound', message: `no parameter ${name}` }];
    switch (operation) {
      case 'PutParameter': {
        if (found && input.Overwrite !== true) return [400, { __type: 'ParameterAlreadyExists', message: `${name} exists` }];
        const tags = (input.Tags as Parameter['tags'] | undefined) ?? found?.tags ?? [];
        const version = (found?.version ?? 0) + 1;
        state.parameters.set(name, { name, type: String(input.Type ?? found?.type), value: String(input.Value), description: input.Description as string | undefined, version, tags });
        return [200, { Version: version, Tier: 'Standard' }];
      }
      case 'GetParameter':
        return found ? [200, { Parameter: { ...describe(found), Value: found.value, Selector: undefined } }] : notFound;
      case 'DescribeParameters': {
        const filters = (input.ParameterFilters as Array<{ Key: string; Values: string[] }> | undefined) ?? [];
        const names = filters.find((f) => f.Key === 'Name')?.Values ?? [...state.parameters.keys()];
        return [200, { Parameters: names.flatMap((n) => (state.parameters.has(n) ? [describe(state.parameters.get(n)!)] : [])) }];
      }
      case 'ListTagsForResource':
        return found ? [200, { TagList: found.tags }] : notFound;
      case 'AddTagsToResource':
        if (!found) return notFound;
        for (const tag of input.Tags as Parameter['tags']) found.tags = [...found.tags.filter((t) => t.Key !== tag.Key), tag];
        return [200, {}];
      case 'RemoveTagsFromResource':
        if (!found) return notFound;
        found.tags = found.tags.filter((t) => !(input.TagKeys as string[]).includes(t.Key));
        return [200, {}];
      case 'DeleteParameter':
        if (!found) return notFound;
        state.parameters.delete(name);
        return [200, {}];
      default:
        return [400, { __type: 'InvalidAction', message: `the stand-in does not answer ${operation}` }];
    }
  };

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const target = req.headers['x-amz-target'];
      if (typeof target === 'string' && target.startsWith('AmazonSSM.')) {
        const operation = target.slice('AmazonSSM.'.length);
        state.calls.push(`ssm:${operation}`);
        const [status, out] = ssm(operation, JSON.parse(body || '{}') as Json);
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(out));
        return;
      }
      const action = new URLSearchParams(body).get('Action') ?? '';
      state.calls.push(`ec2:${action}`);
      if (action === 'DescribeImages') {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(imagesXml(state.images));
        return;
      }
      // The aws_ami data source asks for the image's UEFI variables too: these images have none.
      if (action === 'GetInstanceUefiData') {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?>\n<GetInstanceUefiDataResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>stand-in</requestId><uefiData></uefiData></GetInstanceUefiDataResponse>');
        return;
      }
      res.writeHead(400, { 'content-type': 'text/xml' });
      res.end(`<Response><Errors><Error><Code>InvalidAction</Code><Message>the stand-in does not answer ${action || req.url}</Message></Error></Errors><RequestID>stand-in</RequestID></Response>`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
