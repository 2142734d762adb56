// The smoke runner inside the image's Node.js: requires the layer's packages, calls the handler.
// The protocol of pll_smoke_runner.py, in CommonJS so it runs on every Lambda Node version.
// ES-module packages are loaded with import() from the file require() would have found (import()
// of a bare name ignores NODE_PATH); handlers are found the way Lambda's runtime looks for them.
// Argument: the config file (smoke/stage.py). Exit codes: pulumi_lambda_layers.containers.Refusal.
'use strict';
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const { builtinModules } = require('module');

const MARK = '@@pll-smoke@@ ';
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const realWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const emit = (record) => realWrite(MARK + JSON.stringify(record) + '\n');
const errorText = (e) => (e && e.stack) ? String(e.stack) : String(e);
const isEsm = (e) => e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE');
const importFile = (file) => import(pathToFileURL(file).href);

async function load(name) {
  try {
    const mod = require(name);
    let origin = null;
    try { origin = require.resolve(name); } catch (e) { /* loaded already; the path is a bonus */ }
    return { mod, origin };
  } catch (e) {
    if (!isEsm(e)) throw e;
    const origin = require.resolve(name);
    return { mod: await importFile(origin), origin };
  }
}

async function loadHandlerModule(spec) {
  const base = path.basename(spec);
  const dot = base.indexOf('.');
  if (dot < 1 || dot === base.length - 1) throw new Error(`handler '${spec}' is not 'file.function'`);
  const stem = path.resolve(process.env.LAMBDA_TASK_ROOT, path.dirname(spec), base.slice(0, dot));
  const names = base.slice(dot + 1).split('.');
  for (const ext of ['.js', '.mjs', '.cjs']) {
    if (!fs.existsSync(stem + ext)) continue;
    if (ext === '.mjs') return { mod: await importFile(stem + ext), names };
    try {
      return { mod: require(stem + ext), names };
    } catch (e) {
      if (!isEsm(e)) throw e;
      return { mod: await importFile(stem + ext), names };
    }
  }
  return { mod: (await load(base.slice(0, dot))).mod, names };  // a handler module in the layer
}

function context() {
  const deadline = Date.now() + cfg.timeout_s * 1000;
  const env = process.env;
  return {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME, functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: cfg.function_arn, memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: cfg.request_id, logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME, callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

async function runHandler(spec) {
  const { mod, names } = await loadHandlerModule(spec);
  let fn = mod;
  for (const key of names) fn = fn == null ? undefined : fn[key];
  if (typeof fn !== 'function') throw new Error(`handler '${spec}': the module exports no function '${names.join('.')}'`);
  if (fn.length >= 3) {  // callback style
    return await new Promise((resolve, reject) => {
      const r = fn(cfg.event, context(), (err, value) => (err ? reject(err) : resolve(value)));
      if (r && typeof r.then === 'function') r.then(resolve, reject);
    });
  }
  return await fn(cfg.event, context());
}

async function main() {
  const have = process.versions.node.split('.')[0];
  if (have !== cfg.version) {
    process.stderr.write(`pll: the image has Node.js ${have} but the runtime is Node.js ${cfg.version}\n`);
    return 86;
  }
  emit({ kind: 'env', version: process.versions.node, executable: process.execPath });
  for (const name of cfg.imports) {
    emit({ kind: 'begin', name });
    const start = Date.now();
    try {
      const { origin } = await load(name);
      emit({ kind: 'import', name, ok: true, seconds: (Date.now() - start) / 1000,
             origin: origin === name ? null : origin, preloaded: builtinModules.includes(name) });
    } catch (e) {
      emit({ kind: 'import', name, ok: false, seconds: (Date.now() - start) / 1000,
             error: errorText(e) });
    }
  }
  if (cfg.handler) {
    const name = 'handler ' + cfg.handler;
    emit({ kind: 'begin', name });
    const start = Date.now();
    try {
      const result = await runHandler(cfg.handler);
      emit({ kind: 'handler', name, ok: true, seconds: (Date.now() - start) / 1000,
             result: result === undefined ? null : JSON.parse(JSON.stringify(result)) });
    } catch (e) {
      emit({ kind: 'handler', name, ok: false, seconds: (Date.now() - start) / 1000,
             error: errorText(e) });
    }
  }
  emit({ kind: 'done' });
  return 0;
}

main().then((code) => { process.exitCode = code; },
            (e) => { process.stderr.write(errorText(e) + '\n'); process.exitCode = 1; });
