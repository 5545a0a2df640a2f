// How long a host takes from launch to serving, and the health check grace period of the auto
// scaling groups derived from it. The groups use EC2 health checks: they see a running machine,
// not a serving one, so a host whose boot failed marks itself unhealthy (the boot script,
// `aws autoscaling set-instance-health`). The grace period is how long after a launch a group
// ignores a bad health status, so it must cover a boot that goes well, and no more: a host
// that dies during it is replaced only when it ends.

/**
 * Measured on the local fleet booted the AWS way, from the host image (docs/local-fleet.md):
 * each host runs its release's `host.yml` with Ansible on itself, and one load balancer host
 * was replaced, booted and serving in 24 s. The earlier boot script, without Ansible, took 16 s
 * (docs/benchmarks.md). Seven hosts booting side by side on 2 shared cores took about 2.5
 * minutes; on AWS every host has CPUs of its own, so one host's time is the figure.
 */
export const LOCAL_BOOT_TO_HEALTHY_SECONDS = 24;

/**
 * Not measured here (no AWS account): from the launch of an instance to cloud-init running its
 * user-data, commonly 30 to 60 s for a Debian 12 AMI on a current instance type. The upper end.
 */
export const EC2_LAUNCH_TO_USER_DATA_SECONDS = 60;

/**
 * Not measured here: on Debian's stock AMI (no host image) the boot first installs the AWS CLI
 * and ansible-core from apt and downloads the SSM agent, and the roles then install the
 * packages the host image would have carried. The host image has all of them and skips this.
 */
export const STOCK_IMAGE_INSTALLS_SECONDS = 120;

/** A quarter more than the slowest boot above, rounded up to 30 s. */
const MARGIN = 1.25;

/**
 * Seconds a group waits after launching a host before it acts on the host's health: the
 * slowest boot above (60 + 120 + 24 = 204 s) with a margin, 270 s. A host that reports itself
 * unhealthy because its boot gave up for good should not wait for it
 * (`--no-should-respect-grace-period`): SetInstanceHealth applies the grace period unless told not to.
 */
export const HEALTH_CHECK_GRACE_SECONDS =
  Math.ceil(((EC2_LAUNCH_TO_USER_DATA_SECONDS + STOCK_IMAGE_INSTALLS_SECONDS + LOCAL_BOOT_TO_HEALTHY_SECONDS) * MARGIN) / 30) * 30;
