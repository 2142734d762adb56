# Runs first in every build container, before python.sh or node.sh (build/docker.py joins them):
# refuse an image that cannot make the target's bytes, and add the extra CA bundle to the image's
# own trust store (replacing it would break public hosts). Exit codes: containers.Refusal.
# Environment: PLL_MACHINE (uname -m of the target), PLL_CA (the extra CA bundle, if mounted),
# PLL_CACHE and PLL_CACHE_WANT (the package cache volume and the "uid:gid mode" it must have:
# else exit 88 and the host empties it and gives it to the build uid; build/docker.py UNPREPARED).
# The root filesystem is read-only and the user is not root (docs/sandbox.md): write only to /tmp.
set -eu
m=$(uname -m)
if [ "$m" != "$PLL_MACHINE" ]; then
  echo "pll: the image runs $m code but the layer is for $PLL_MACHINE" >&2; exit 87
fi
if [ -n "${PLL_CACHE:-}" ] && [ "$(stat -c '%u:%g %a' "$PLL_CACHE")" != "$PLL_CACHE_WANT" ]; then
  echo "pll: the package cache volume is $(stat -c '%u:%g %a' "$PLL_CACHE")"; exit 88
fi
if [ -f "$PLL_CA" ]; then
  : > /tmp/pll-ca.pem
  for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -f "$f" ]; then cat "$f" >> /tmp/pll-ca.pem; break; fi
  done
  cat "$PLL_CA" >> /tmp/pll-ca.pem
  export PIP_CERT=/tmp/pll-ca.pem SSL_CERT_FILE=/tmp/pll-ca.pem REQUESTS_CA_BUNDLE=/tmp/pll-ca.pem
  export NODE_EXTRA_CA_CERTS="$PLL_CA" npm_config_cafile=/tmp/pll-ca.pem
fi
