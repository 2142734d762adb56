"""The smoke runner inside the image's Python: imports the layer's packages, calls the handler."""

# Runs in the image's Python, never this package's, so it is no part of the typed code and keeps
# to what any Python 3 runs (%-formatting): the version check below must get to say "wrong
# Python". It imports only what it needs (not even typing): every module loaded before the
# imports counts as "preloaded" by the runtime, as the modules of Lambda's own bootstrap do.
# One JSON record per line on the real stdout; whatever the layer prints goes to stderr, so it
# can never be mistaken for a record. __import__ (unlike importlib.import_module) leaves
# importlib's own frames out of tracebacks. Argument: the config file (smoke/stage.py).
# Exit codes: pulumi_lambda_layers.containers.Refusal.
# mypy: ignore-errors
# ruff: noqa: UP031
import json
import os
import sys
import time
import traceback

MARK = "@@pll-smoke@@ "


class Context:
    def __init__(self, cfg):
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = cfg["function_arn"]
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = cfg["request_id"]
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.time() + cfg["timeout_s"]

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def origin_of(module):
    paths = list(getattr(module, "__path__", None) or [])
    return getattr(module, "__file__", None) or (paths[0] if paths else None)


def error_text():
    kind, exc, tb = sys.exc_info()
    return "".join(traceback.format_exception(kind, exc, tb.tb_next))  # not main()'s frame


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # the runner's folder is not on Lambda's path
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    have = "%d.%d" % sys.version_info[:2]
    if have != cfg["version"]:
        sys.stderr.write("pll: the image has Python %s but the runtime is Python %s\n"
                         % (have, cfg["version"]))
        return 86
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def emit(record):
        out.write(MARK + json.dumps(record) + "\n")
        out.flush()

    emit({"kind": "env", "version": "%d.%d.%d" % sys.version_info[:3],
          "executable": sys.executable})
    preloaded = set(sys.modules)
    for name in cfg["imports"]:
        emit({"kind": "begin", "name": name})
        start = time.time()
        try:
            __import__(name)
            module = sys.modules[name]
        except BaseException:
            emit({"kind": "import", "name": name, "ok": False, "seconds": time.time() - start,
                  "error": error_text()})
            continue
        emit({"kind": "import", "name": name, "ok": True, "seconds": time.time() - start,
              "origin": origin_of(module), "preloaded": name in preloaded})
    handler = cfg.get("handler")
    if handler:
        name = "handler " + handler
        emit({"kind": "begin", "name": name})
        start = time.time()
        try:
            modname = handler.rpartition(".")[0].replace("/", ".")
            fname = handler.rpartition(".")[2]
            __import__(modname)
            module = sys.modules[modname]
            function = getattr(module, fname, None)
            if not callable(function):
                raise AttributeError("%s has no function %r" % (origin_of(module), fname))
            result = function(cfg["event"], Context(cfg))
            emit({"kind": "handler", "name": name, "ok": True, "seconds": time.time() - start,
                  "result": json.loads(json.dumps(result))})
        except BaseException:
            emit({"kind": "handler", "name": name, "ok": False, "seconds": time.time() - start,
                  "error": error_text()})
    emit({"kind": "done"})
    return 0


sys.exit(main())
