// Module worker bootstrap: loads the wasm volunteer client and runs its loop until told to stop.
import init, { VolunteerWorker } from './pkg/cyclepool_web_client.js';

let volunteer = null;
// The jobs the volunteer chose not to compute; kept here too, so that a choice made while the
// client is still loading is not lost.
let excludedJobs = [];

function applyExcludedJobs() {
  try {
    volunteer.set_excluded_jobs(excludedJobs);
  } catch (error) {
    self.postMessage({ type: 'error', message: `job choice not applied: ${error?.message ?? error}` });
  }
}

self.addEventListener('message', async (message) => {
  const command = message.data;
  if (command.type === 'start' && volunteer === null) {
    excludedJobs = command.excludedJobs ?? excludedJobs;
    try {
      await init({ module_or_path: new URL('./pkg/cyclepool_web_client_bg.wasm', import.meta.url) });
      volunteer = new VolunteerWorker(command.seed, command.trustedKeys, (event) => self.postMessage(event));
      volunteer.set_duty_cycle(command.dutyCycle ?? 1);
      volunteer.set_paused(Boolean(command.paused));
      // The embedding site (embed.js) this worker computes for, if any.
      volunteer.set_site(command.site ?? undefined);
      // Before the loop's first lease request, so that no excluded job is ever leased.
      applyExcludedJobs();
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
  } else if (command.type === 'exclude-jobs') {
    excludedJobs = command.jobs;
    if (volunteer !== null) applyExcludedJobs();
  }
});
