/**
 * Web Worker computing one shard's gradient for `lib/train.ts`. Parameters, the
 * shard's gradient buffer and the token stream are `SharedArrayBuffer`s owned
 * by the main thread; each `step` message carries the shard's window starts and
 * is answered with the shard's summed loss once its gradient is written.
 *
 * @module
 */
import { allocActs, type Gpt2Acts, gpt2Backward, gpt2Forward, gpt2Layout, type ParamLayout } from "./_backward.ts";
import type { Gpt2Config } from "./types.ts";

interface InitMessage {
  type: "init";
  config: Gpt2Config;
  params: Float32Array;
  grads: Float32Array;
  data: Int32Array;
  B: number;
  T: number;
  scale: number;
}

interface StepMessage {
  type: "step";
  starts: Int32Array;
}

interface State {
  init: InitMessage;
  lay: ParamLayout;
  acts: Gpt2Acts;
  inputs: Int32Array;
  targets: Int32Array;
}

let state: State | null = null;
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<InitMessage | StepMessage>) => void) | null;
  postMessage(m: unknown): void;
};

scope.onmessage = (e: MessageEvent<InitMessage | StepMessage>) => {
  try {
    const m = e.data;
    if (m.type === "init") {
      state = {
        init: m,
        lay: gpt2Layout(m.config),
        acts: allocActs(m.config, m.B, m.T),
        inputs: new Int32Array(m.B * m.T),
        targets: new Int32Array(m.B * m.T),
      };
      scope.postMessage({ type: "ready" });
      return;
    }
    if (!state) throw new Error("step before init");
    const { config, params, grads, data, B, T, scale } = state.init;
    for (let b = 0; b < B; b++) {
      const s0 = m.starts[b];
      state.inputs.set(data.subarray(s0, s0 + T), b * T);
      state.targets.set(data.subarray(s0 + 1, s0 + T + 1), b * T);
    }
    grads.fill(0);
    const loss = gpt2Forward(config, state.lay, params, state.acts, state.inputs, state.targets);
    gpt2Backward(config, state.lay, params, grads, state.acts, state.inputs, state.targets, scale);
    scope.postMessage({ type: "done", loss });
  } catch (err) {
    scope.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
  }
};
