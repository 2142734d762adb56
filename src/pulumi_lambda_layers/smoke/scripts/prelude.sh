# Runs first in every smoke container: refuse an image for another architecture (as the Docker
# builder does), then hand over to the runner with Lambda's environment already set.
# Arguments (positional, so the function's environment stays exactly Lambda's): the target's
# uname -m, the interpreter, the runner file, its config file. Exit codes: containers.Refusal.
machine=$1 interpreter=$2 runner=$3 config=$4
m=$(uname -m)
if [ "$m" != "$machine" ]; then
  echo "pll: the image runs $m code but the layer is for $machine" >&2; exit 87
fi
exe=$(command -v "$interpreter") || {
  echo "pll: the image has no $interpreter on PATH ($PATH)" >&2; exit 89; }
exec "$exe" "$runner" "$config"
