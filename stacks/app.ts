// Builds the CDKTF app for one environment; main.ts runs it, tests call it directly.
import { App } from './cdk';
import { CadfleetStack } from './cadfleet-stack';
import type { StackConfig } from './config';

export interface BuildOptions {
  /** Where `synth` writes `stacks/<stack>/cdk.tf.json`. @default "cdktf.out" (or CDKTF_OUTDIR from the cdktf CLI) */
  readonly outdir?: string;
}

export function buildApp(config: StackConfig, options: BuildOptions = {}): { app: App; stack: CadfleetStack } {
  const app = new App(options.outdir === undefined ? {} : { outdir: options.outdir });
  const stack = new CadfleetStack(app, config);
  return { app, stack };
}
