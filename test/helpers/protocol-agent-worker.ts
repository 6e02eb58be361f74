/**
 * Child-process entry of AgentProcesses (test/helpers/protocol-agents.ts): one ProtocolAgentFleet,
 * driven over the IPC channel (WorkerRequest in, WorkerReply out). Exits when the parent goes.
 */
import { ProtocolAgentFleet, type WorkerReply, type WorkerRequest } from './protocol-agents.js';

let fleet: ProtocolAgentFleet | undefined;

const need = (): ProtocolAgentFleet => {
  if (!fleet) throw new Error('prepare first');
  return fleet;
};

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'prepare':
      fleet = await ProtocolAgentFleet.prepare(req.options);
      return fleet.ids.length;
    case 'connect':
      await need().connect();
      return null;
    case 'counts':
      return need().counts();
    case 'up':
      return need().upIds();
    case 'answer':
      need().answer = req.on;
      return null;
    case 'events':
      return need().sendEvents(req.perAgent);
    case 'close':
      await fleet?.close();
      return null;
  }
}

process.on('message', (req: WorkerRequest) => {
  handle(req).then(
    (result) => process.send?.({ id: req.id, ok: true, result } satisfies WorkerReply),
    (err: unknown) => process.send?.({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
  );
});
process.on('disconnect', () => process.exit(0));
