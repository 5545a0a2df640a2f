// The CI plan summary on plans the offline run does not produce: replacements, updates, and a
// deploy role that trusts through an existing OIDC provider (its trust document is read during
// the plan, so it sits in prior_state rather than among the changes).
import { describe, expect, it } from 'vitest';
import { planSummary, totals, trustedSubjects, type PlanJson } from '../../scripts/plan-summary';

const trust = (sub: string) => ({
  statement: [
    {
      actions: ['sts:AssumeRoleWithWebIdentity'],
      condition: [
        { variable: 'token.actions.githubusercontent.com:aud', values: ['sts.amazonaws.com'] },
        { variable: 'token.actions.githubusercontent.com:sub', values: [sub] },
      ],
    },
  ],
});

const plan: PlanJson = {
  resource_changes: [
    { address: 'aws_launch_template.api', mode: 'managed', type: 'aws_launch_template', change: { actions: ['update'] } },
    { address: 'aws_instance.x', mode: 'managed', type: 'aws_instance', change: { actions: ['delete', 'create'] } },
    { address: 'aws_s3_bucket.old', mode: 'managed', type: 'aws_s3_bucket', change: { actions: ['delete'] } },
    { address: 'aws_vpc.main', mode: 'managed', type: 'aws_vpc', change: { actions: ['no-op'] } },
    { address: 'data.aws_iam_policy_document.other', mode: 'data', type: 'aws_iam_policy_document', change: { actions: ['read'], after: { statement: [{ actions: ['s3:GetObject'] }] } } },
  ],
  prior_state: { values: { root_module: { resources: [{ mode: 'data', type: 'aws_iam_policy_document', values: trust('repo:acme/cadfleet:environment:prod') }] } } },
};

describe('plan summary', () => {
  it('counts as terraform does: a replacement is one add and one destroy, no-ops and reads are not changes', () => {
    expect(totals(plan)).toEqual({ add: 1, change: 1, destroy: 2 });
  });

  it('finds the trusted subject in a document read during the plan, and none in others', () => {
    expect(trustedSubjects(plan)).toEqual(['repo:acme/cadfleet:environment:prod']);
    expect(trustedSubjects({ resource_changes: [] })).toEqual([]);
  });

  it('lists changed resources only, and says when there is no deploy role', () => {
    const text = planSummary(plan, 'Offline plan: cadfleet-prod');
    expect(text).toContain('**Plan: 1 to add, 1 to change, 2 to destroy.**');
    expect(text).toContain('- `repo:acme/cadfleet:environment:prod`');
    expect(text).toContain('delete/create  aws_instance.x');
    expect(text).not.toContain('aws_vpc.main');
    expect(planSummary({}, 't')).toContain('no deploy role');
  });
});
