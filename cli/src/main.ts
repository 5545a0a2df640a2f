import { repoRoot } from './environment';
import { buildProgram } from './program';
import { withProjectTools } from './tools';

// `cadfleet logs ... | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

// The AWS SDK warns on every command under Node 20 that its releases from 2027 need Node 22;
// the lock file pins today's, which still run on Node 20 (past end of life, but what some
// machines have; package.json's engines asks for 22 or 24). `cadfleet doctor` is where the
// operator's Node is judged.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// terraform from .cadfleet/tools when setup had to install it there (scripts/ensure-terraform.sh);
// every command the CLI spawns finds it by name, as it finds the machine's own.
try {
  process.env.PATH = withProjectTools(process.env.PATH, repoRoot());
} catch {
  // Not run from a checkout (no ansible/ above the CLI): no project tools.
}

await buildProgram().parseAsync(process.argv);
