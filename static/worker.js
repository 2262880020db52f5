// Module worker bootstrap: loads the wasm volunteer client and runs its loop until told to stop.
import init, { VolunteerWorker } from './pkg/cyclepool_web_client.js';
import { openQueue } from './offline-queue.js';

// The offline queue opens while the page is still reading the keys; the client gets this one.
openQueue();

let volunteer = null;
// The jobs the volunteer chose not to compute; kept here too, so that a choice made while the
// client is still loading is not lost.
let excludedJobs = [];
// The job categories the volunteer opted out of (names), kept for the same reason.
let excludedCategories = [];

function applyExcludedJobs() {
  try {
    volunteer.set_excluded_jobs(excludedJobs);
  } catch (error) {
    self.postMessage({ type: 'error', message: `job choice not applied: ${error?.message ?? error}` });
  }
}

function applyExcludedCategories() {
  try {
    volunteer.set_excluded_categories(excludedCategories);
  } catch (error) {
    self.postMessage({ type: 'error', message: `category choice not applied: ${error?.message ?? error}` });
  }
}

self.addEventListener('message', async (message) => {
  const command = message.data;
  if (command.type === 'start' && volunteer === null) {
    excludedJobs = command.excludedJobs ?? excludedJobs;
    excludedCategories = command.excludedCategories ?? excludedCategories;
    try {
      // The page sends the client's module compiled; fetched here only if it did not.
      await init({ module_or_path: command.module ?? new URL('./pkg/cyclepool_web_client_bg.wasm', import.meta.url) });
      volunteer = new VolunteerWorker(command.seed, command.trustedKeys, (event) => self.postMessage(event));
      volunteer.set_duty_cycle(command.dutyCycle ?? 1);
      // Seconds of work kept in hand (for work without the network); the client's default if
      // not given.
      if (command.workBuffer !== undefined) volunteer.set_work_buffer(command.workBuffer);
      volunteer.set_paused(Boolean(command.paused));
      // The embedding site (embed.js) this worker computes for, if any.
      volunteer.set_site(command.site ?? undefined);
      // Before the loop's first lease request, so that no excluded job is ever leased.
      applyExcludedJobs();
      applyExcludedCategories();
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
  } else if (command.type === 'work-buffer' && volunteer !== null) {
    volunteer.set_work_buffer(command.value);
  } else if (command.type === 'online' && volunteer !== null) {
    // The page saw the network come back: send waiting results now, not after the backoff.
    volunteer.network_online();
  } else if (command.type === 'exclude-jobs') {
    excludedJobs = command.jobs;
    if (volunteer !== null) applyExcludedJobs();
  } else if (command.type === 'exclude-categories') {
    excludedCategories = command.categories;
    if (volunteer !== null) applyExcludedCategories();
  }
});
