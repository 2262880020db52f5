// Module worker bootstrap: loads the wasm volunteer client and runs its loop until told to stop.
import init, { VolunteerWorker } from './pkg/cyclepool_web_client.js';

let volunteer = null;

self.addEventListener('message', async (message) => {
  const command = message.data;
  if (command.type === 'start' && volunteer === null) {
    try {
      await init({ module_or_path: new URL('./pkg/cyclepool_web_client_bg.wasm', import.meta.url) });
      volunteer = new VolunteerWorker(command.seed, command.trustedKeys, (event) => self.postMessage(event));
      volunteer.set_duty_cycle(command.dutyCycle ?? 1);
      volunteer.set_paused(Boolean(command.paused));
      await volunteer.run();
    } catch (error) {
      self.postMessage({ type: 'error', message: `worker stopped: ${error?.message ?? error}` });
    }
  } else if (command.type === 'stop' && volunteer !== null) {
    volunteer.stop();
  } else if (command.type === 'duty-cycle' && volunteer !== null) {
    volunteer.set_duty_cycle(command.value);
  } else if (command.type === 'paused' && volunteer !== null) {
    volunteer.set_paused(command.value);
  }
});
