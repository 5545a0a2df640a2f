// An S3 bucket that nobody outside the account can read: every public access block on,
// ACLs disabled, encryption at rest, TLS required, versions kept for a while, abandoned
// multipart uploads cleaned up.
import { Construct } from 'constructs';
import { DataAwsIamPolicyDocument, S3Bucket, S3BucketCorsConfiguration, S3BucketLifecycleConfiguration, S3BucketOwnershipControls, S3BucketPolicy, S3BucketPublicAccessBlock, S3BucketServerSideEncryptionConfigurationA, S3BucketVersioningA } from '../aws';
import { isToken, must, mustBeIntegerIn } from '../validate';

export interface BucketCors {
  /** Origins allowed to send requests from a browser, e.g. `https://cad.example.com`. Never `*`. */
  readonly allowedOrigins: string[];
  /** @default ["PUT"] (presigned uploads) */
  readonly allowedMethods?: string[];
  /** @default ["content-type", "x-amz-*"] */
  readonly allowedHeaders?: string[];
  /** @default 3000 */
  readonly maxAgeSeconds?: number;
}

export interface PrivateBucketProps {
  /** Exact bucket name; may be a Terraform expression that yields null to use `namePrefix`. @default none */
  readonly bucketName?: string;
  /** Prefix of a generated, globally unique name (at most 37 characters). @default none */
  readonly namePrefix?: string;
  /** Keep overwritten and deleted objects as noncurrent versions. @default true */
  readonly versioned?: boolean;
  /** Days a noncurrent version is kept before it expires. @default 30 */
  readonly noncurrentVersionDays?: number;
  /** Days after which an unfinished multipart upload is aborted. @default 1 */
  readonly abortIncompleteUploadDays?: number;
  /** Let `terraform destroy` delete a bucket that still holds objects. @default false */
  readonly forceDestroy?: boolean;
  /** Browser access (presigned uploads). @default none */
  readonly cors?: BucketCors;
}

const CORS_METHODS = ['GET', 'PUT', 'POST', 'HEAD'];

export function validatePrivateBucketProps(props: PrivateBucketProps): void {
  must(props.bucketName !== undefined || props.namePrefix !== undefined, 'bucketName', 'be set, or namePrefix', props.bucketName);
  if (props.namePrefix !== undefined && !isToken(props.namePrefix)) {
    must(/^[a-z0-9][a-z0-9.-]{0,36}$/.test(props.namePrefix), 'namePrefix', 'be at most 37 lowercase letters, digits, dots or dashes', props.namePrefix);
  }
  mustBeIntegerIn(props.noncurrentVersionDays, 'noncurrentVersionDays', 1, 3650);
  mustBeIntegerIn(props.abortIncompleteUploadDays, 'abortIncompleteUploadDays', 1, 365);
  if (props.cors) {
    for (const origin of isToken(props.cors.allowedOrigins) ? [] : props.cors.allowedOrigins) {
      if (isToken(origin)) continue;
      must(origin !== '*' && /^https?:\/\/[^/*]+$/.test(origin), 'cors.allowedOrigins', 'name origins such as "https://cad.example.com" (no "*", no path)', origin);
    }
    for (const method of props.cors.allowedMethods ?? []) {
      must(CORS_METHODS.includes(method), 'cors.allowedMethods', `be among ${CORS_METHODS.join(', ')}`, method);
    }
  }
}

export class PrivateBucket extends Construct {
  readonly bucket: S3Bucket;

  constructor(scope: Construct, id: string, props: PrivateBucketProps) {
    super(scope, id);
    validatePrivateBucketProps(props);

    this.bucket = new S3Bucket(this, 'bucket', {
      bucket: props.bucketName,
      bucketPrefix: props.namePrefix,
      forceDestroy: props.forceDestroy ?? false,
    });
    const bucket = this.bucket.id;

    const publicAccess = new S3BucketPublicAccessBlock(this, 'public-access', {
      bucket,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    new S3BucketOwnershipControls(this, 'ownership', { bucket, rule: { objectOwnership: 'BucketOwnerEnforced' } });
    // SSE-S3: encrypted at rest with no key to manage or pay for; hosts need no KMS grant.
    new S3BucketServerSideEncryptionConfigurationA(this, 'encryption', {
      bucket,
      rule: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' } }],
    });
    const versioned = props.versioned ?? true;
    const versioning = new S3BucketVersioningA(this, 'versioning', {
      bucket,
      versioningConfiguration: { status: versioned ? 'Enabled' : 'Suspended' },
    });

    const tlsOnly = new DataAwsIamPolicyDocument(this, 'tls-only', {
      statement: [
        {
          sid: 'DenyInsecureTransport',
          effect: 'Deny',
          principals: [{ type: '*', identifiers: ['*'] }],
          actions: ['s3:*'],
          resources: [this.bucket.arn, `${this.bucket.arn}/*`],
          condition: [{ test: 'Bool', variable: 'aws:SecureTransport', values: ['false'] }],
        },
      ],
    });
    new S3BucketPolicy(this, 'policy', { bucket, policy: tlsOnly.json, dependsOn: [publicAccess] });

    new S3BucketLifecycleConfiguration(this, 'lifecycle', {
      bucket,
      rule: [
        {
          id: 'abort-abandoned-uploads',
          status: 'Enabled',
          filter: [{ prefix: '' }],
          abortIncompleteMultipartUpload: [{ daysAfterInitiation: props.abortIncompleteUploadDays ?? 1 }],
        },
        ...(versioned
          ? [
              {
                id: 'expire-old-versions',
                status: 'Enabled',
                filter: [{ prefix: '' }],
                noncurrentVersionExpiration: [{ noncurrentDays: props.noncurrentVersionDays ?? 30 }],
                expiration: [{ expiredObjectDeleteMarker: true }],
              },
            ]
          : []),
      ],
      dependsOn: [versioning],
    });

    if (props.cors) {
      new S3BucketCorsConfiguration(this, 'cors', {
        bucket,
        corsRule: [
          {
            allowedOrigins: props.cors.allowedOrigins,
            allowedMethods: props.cors.allowedMethods ?? ['PUT'],
            allowedHeaders: props.cors.allowedHeaders ?? ['content-type', 'x-amz-*'],
            exposeHeaders: ['ETag'],
            maxAgeSeconds: props.cors.maxAgeSeconds ?? 3000,
          },
        ],
      });
    }
  }
}
