/**
 * Child-process entry of ScaleController (test/helpers/scale-controller.ts): the reference controller
 * started exactly as `cvm-agent controller --config FILE` starts it (agent/cli/commands/controller.ts:
 * loadControllerConfig, the same logger at the configured level on stdout, Controller.start), plus a
 * small IPC channel for the load driver: `challenge` (Controller.challengeNow, the call the session's
 * own challenge timer makes), `gc` (with --expose-gc, before an RSS reading) and `stop`.
 * Usage: node --expose-gc --import tsx test/helpers/scale-controller-child.ts CONFIG (under Vitest: its
 * built file, test/helpers/built.ts fixtureArgs)
 */
import { loadControllerConfig } from '../../agent/controller/config.js';
import { Controller } from '../../agent/controller/controller-server.js';
import { createLogger } from '../../agent/util/log.js';

export type ScaleControllerRequest = { id: number; op: 'challenge'; agentIds: string[] } | { id: number; op: 'gc' } | { id: number; op: 'stop' };
export type { RpcReply as ScaleControllerReply } from './child-rpc.js';
import type { RpcReply as ScaleControllerReply } from './child-rpc.js';

const file = process.argv[2];
if (!file) throw new Error('usage: scale-controller-child.ts CONFIG');
const resolved = await loadControllerConfig(file);
const log = createLogger(resolved.config.logLevel, { service: 'cvm-agent-controller', sync: true });
const controller = await Controller.start(resolved, { log });
const gc = (globalThis as { gc?: () => void }).gc;

async function handle(req: ScaleControllerRequest): Promise<unknown> {
  switch (req.op) {
    case 'challenge': {
      let issued = 0;
      for (const id of req.agentIds) if (controller.challengeNow(id)) issued++;
      return issued;
    }
    case 'gc':
      if (!gc) throw new Error('start the controller child with --expose-gc');
      gc();
      return process.memoryUsage();
    case 'stop':
      await controller.close();
      setImmediate(() => process.exit(0));
      return null;
  }
}

process.on('message', (req: ScaleControllerRequest) => {
  handle(req).then(
    (result) => process.send?.({ id: req.id, ok: true, result } satisfies ScaleControllerReply),
    (err: unknown) => process.send?.({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies ScaleControllerReply),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ id: 0, ok: true, result: controller.address() } satisfies ScaleControllerReply);
