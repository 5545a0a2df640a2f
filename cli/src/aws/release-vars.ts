import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { releaseBundleKey } from '../../../stacks/contract';
import type { Outputs } from '../contract';
import type { Release } from '../release/bundle';

/**
 * What release-install.yml needs on AWS: the bundle as a presigned URL of the releases bucket
 * (the upgrade publishes it there first; hosts fetch it through their NAT or the S3 endpoint,
 * not through the Session Manager tunnel) and its sum, which the role checks.
 */
export async function awsReleaseVars(outputs: Outputs, release: Release): Promise<Record<string, unknown>> {
  const s3 = new S3Client({ region: outputs.region ?? undefined });
  try {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: outputs.buckets.releases, Key: releaseBundleKey(release.version) }), { expiresIn: 3600 });
    return { release_version: release.version, release_url: url, release_sha256: release.sha256 };
  } finally {
    s3.destroy();
  }
}
