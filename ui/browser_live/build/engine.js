// The two ONNX graphs on onnxruntime-web: CenterFace (free input sizes) and the live emotion model.
// Shared by the worker (the page) and by nothing else: a plain ES module around an ``ort`` namespace.

export async function createEngine(ort, detectorUrl, modelUrl) {
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const [detector, model] = await Promise.all([
    ort.InferenceSession.create(detectorUrl, options), ort.InferenceSession.create(modelUrl, options)]);
  const [heatName, sizeName, offsetName, marksName] = detector.outputNames;
  const detectorInput = detector.inputNames[0], modelInput = model.inputNames[0], modelOutput = model.outputNames[0];
  return {
    async detect(blob, n, h, w) {
      const out = await detector.run({ [detectorInput]: new ort.Tensor("float32", blob, [n, 3, h, w]) });
      return { heat: out[heatName].data, size: out[sizeName].data, offset: out[offsetName].data, marks: out[marksName].data };
    },
    async classify(x, n) {
      const side = Math.round(Math.sqrt(x.length / n));
      const out = await model.run({ [modelInput]: new ort.Tensor("float32", x, [n, side, side, 1]) });
      return out[modelOutput].data;
    },
  };
}
