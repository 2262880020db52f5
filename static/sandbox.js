// The sandbox worker: instantiates a job module with an EMPTY import object (it can reach
// nothing but its own memory) and runs one unit through the job ABI (docs/JOB-ABI.md).
// The volunteer worker that owns it terminates it if a unit runs past its time budget.

const MAX_OUTPUT_BYTES = 1 << 20; // shared/src/protocol.rs MAX_OUTPUT_BYTES
const instances = new Map(); // module key (its sha-256) -> instance, reused across units
// The compiled module comes only with a unit whose module differs from the last one sent
// (copying it to this worker for every unit costs time between units): key -> module.
const modules = new Map();

self.addEventListener('message', (message) => {
  const { key, input } = message.data;
  if (message.data.module) {
    modules.clear();
    modules.set(key, message.data.module);
  }
  const module = modules.get(key);
  // The unit's compute time as measured here, without the messages to and from this worker.
  const started = performance.now();
  try {
    let instance = instances.get(key);
    if (!instance) {
      if (!module) throw new Error('the job module was not handed to the sandbox');
      instance = new WebAssembly.Instance(module, {});
      instances.clear(); // one job at a time: let the previous instance's memory go
      instances.set(key, instance);
    }
    const abi = instance.exports;
    const inputPtr = abi.cyclepool_alloc(input.length);
    if (inputPtr === 0 && input.length > 0) throw new Error('cyclepool_alloc failed');
    new Uint8Array(abi.memory.buffer, inputPtr, input.length).set(input);
    const status = abi.cyclepool_run(inputPtr, input.length);
    if (status !== 0) {
      // The instance may be in any state after a failure: start the next unit afresh.
      instances.delete(key);
      self.postMessage({ kind: 'job_error', code: status, message: `status ${status}` });
      return;
    }
    const outputPtr = abi.cyclepool_output_ptr() >>> 0;
    const outputLen = abi.cyclepool_output_len() >>> 0;
    if (outputLen > MAX_OUTPUT_BYTES) throw new Error(`output of ${outputLen} bytes exceeds the limit of ${MAX_OUTPUT_BYTES}`);
    if (outputPtr + outputLen > abi.memory.buffer.byteLength) throw new Error('output lies outside memory');
    // Copy out: the module's memory is reused by the next unit.
    const output = new Uint8Array(abi.memory.buffer, outputPtr, outputLen).slice();
    self.postMessage({ output, ms: performance.now() - started }, [output.buffer]);
  } catch (error) {
    instances.delete(key);
    self.postMessage({ kind: 'trap', message: String(error?.message ?? error) });
  }
});
