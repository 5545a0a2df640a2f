// What `cadfleet apply` shows and asks before it applies a plan (cli/src/aws/plan-summary.ts).
// The real plan of the stacks is summarized in test/stacks/plan.test.ts.
import { describe, expect, it } from 'vitest';
import { confirmApply, describePlan, summarizePlan, type PlanJson } from '../../../cli/src/aws/plan-summary';

const plan: PlanJson = {
  resource_changes: [
    { address: 'aws_instance_profile.api', type: 'aws_iam_instance_profile', change: { actions: ['create'] } },
    { address: 'aws_launch_template.worker', type: 'aws_launch_template', change: { actions: ['update'] } },
    { address: 'aws_autoscaling_group.worker', type: 'aws_autoscaling_group', change: { actions: ['delete', 'create'] } },
    { address: 'aws_db_instance.database', type: 'aws_db_instance', change: { actions: ['delete', 'create'] } },
    { address: 'aws_sns_topic.alarms', type: 'aws_sns_topic', change: { actions: ['delete'] } },
    { address: 'aws_vpc.network', type: 'aws_vpc', change: { actions: ['no-op'] } },
    { address: 'data.aws_iam_policy_document.x', type: 'aws_iam_policy_document', mode: 'data', change: { actions: ['read'] } },
  ],
  output_changes: { lb_address: { actions: ['no-op'] } },
};

describe('the plan cadfleet apply shows', () => {
  it('counts as terraform does and names every deletion and replacement, the data-holding ones first', () => {
    const s = summarizePlan(plan);
    expect(s).toMatchObject({ add: 3, change: 1, destroy: 3, outputs: 0 });
    expect(describePlan('prod', s)).toEqual([
      'cadfleet apply: the plan for prod: 3 to add, 1 to change, 3 to destroy',
      '  REPLACE aws_db_instance.database   <- holds data: its contents are lost',
      '  REPLACE aws_autoscaling_group.worker',
      '  DELETE  aws_sns_topic.alarms',
    ]);
  });

  it('asks a person, and applies only on "yes"', async () => {
    const s = summarizePlan(plan);
    const questions: string[] = [];
    const ask = (answer: string) => async (q: string): Promise<string> => {
      questions.push(q);
      return answer;
    };
    expect(await confirmApply('prod', s, { yes: false, interactive: true, ask: ask('yes\n') })).toEqual({ apply: true, code: 0 });
    expect(questions[0]).toBe('Apply this plan to prod, losing what 1 data-holding resource holds? Only "yes" applies it: ');
    expect(await confirmApply('prod', s, { yes: false, interactive: true, ask: ask('y') })).toEqual({ apply: false, code: 1, message: 'cadfleet apply: not applied (the answer was not "yes"); nothing changed' });
  });

  it('refuses a script that did not pass --yes, and applies with it without asking', async () => {
    const s = summarizePlan(plan);
    const never = async (): Promise<string> => {
      throw new Error('asked');
    };
    const refused = await confirmApply('staging', s, { yes: false, interactive: false, ask: never });
    expect(refused).toMatchObject({ apply: false, code: 2 });
    expect(refused.message).toMatch(/run it in a terminal, or pass --yes/);
    expect(await confirmApply('staging', s, { yes: true, interactive: false, ask: never })).toEqual({ apply: true, code: 0 });
  });

  it('applies nothing when nothing changes, and asks when only outputs change (an apply writes them)', async () => {
    const none = summarizePlan({ resource_changes: [{ address: 'aws_vpc.n', type: 'aws_vpc', change: { actions: ['no-op'] } }] });
    expect(describePlan('staging', none)).toEqual(['cadfleet apply: staging is up to date; nothing to apply']);
    expect(await confirmApply('staging', none, { yes: false, interactive: false, ask: async () => 'no' })).toEqual({ apply: false, code: 0 });
    const outputs = summarizePlan({ output_changes: { lb_address: { actions: ['update'] } } });
    expect(describePlan('staging', outputs)).toEqual(['cadfleet apply: the plan for staging: 0 to add, 0 to change, 0 to destroy; 1 output to change']);
    expect(await confirmApply('staging', outputs, { yes: true, interactive: false, ask: async () => 'no' })).toEqual({ apply: true, code: 0 });
  });
});
