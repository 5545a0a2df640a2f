// The one place the stacks (and their tests) import the CDK's core from, as ./aws.ts is for the
// AWS provider's bindings: CDKTF today (cdktf 0.21, its last release). Moving to its fork CDK
// Terrain is these two files and package.json: docs/aws.md, "CDK Terrain".
export { App, Fn, LocalBackend, Op, S3Backend, TerraformCount, TerraformLocal, TerraformOutput, TerraformStack, TerraformVariable, Testing, Token, ref } from 'cdktf';
export type { IResolvable, ITerraformDependable, TerraformDataSource, TerraformResource } from 'cdktf';
