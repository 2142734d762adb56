#!/usr/bin/env bash
# Make a Docker engine and arm64 emulation available on a dev/CI machine that may start with neither.
# Run it directly, or source it for its functions (build-images.sh does). Idempotent; fast when ready.
set -euo pipefail

PLL_DEV_CACHE="${PLL_DEV_CACHE:-$HOME/.cache/pulumi-lambda-layers-dev}"
DOCKERD_LOG="$PLL_DEV_CACHE/dockerd.log"

# Root-only steps go through sudo when we are not root (a developer laptop); CI runs as root.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# `apt-get update` is slow and only needed once per run, however many packages are missing.
_APT_UPDATED=0
apt_install() {
    if [ "$_APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

docker_ready() { docker info >/dev/null 2>&1; }

# Start dockerd detached from our session (setsid) so it outlives this script and its process group.
# On failure, stop the daemon we started (by its pid) so a retry with other options can take over.
_start_dockerd() {
    local sudo=() i pid
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "== $(date -u +%FT%TZ) dockerd $*" >>"$DOCKERD_LOG"
    "${sudo[@]}" setsid nohup dockerd "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 &
    pid=$!
    # Not a job of the script that sourced this one: its `wait` (build-images.sh waits for its
    # image builds) would otherwise wait for the daemon, i.e. forever.
    disown "$pid"
    for i in $(seq 60); do
        docker_ready && return 0
        [ -d "/proc/$pid" ] || return 1  # dockerd exited: no point in waiting the full minute
        sleep 1
    done
    as_root kill "$pid" 2>/dev/null || true
    for i in $(seq 20); do [ -d "/proc/$pid" ] || break; sleep 1; done
    return 1
}

ensure_docker() {
    docker_ready && return 0
    mkdir -p "$PLL_DEV_CACHE"
    if ! command -v dockerd >/dev/null; then
        echo "ensure-docker: installing docker.io" >&2
        apt_install docker.io
    fi
    # docker.io's postinst may have started it through an init system after all.
    docker_ready && return 0
    # Show only this run's part of the log on failure; it keeps earlier runs for comparison.
    local log_start
    log_start=$(($(wc -l 2>/dev/null <"$DOCKERD_LOG" || echo 0) + 1))
    if pgrep -x dockerd >/dev/null; then
        # A daemon is up but not answering yet (or wedged): give it the same minute, never a twin.
        local i
        for i in $(seq 60); do docker_ready && return 0; sleep 1; done
        echo "ensure-docker: a dockerd runs but does not answer \`docker info\` after 60 s;" \
             "stop it and rerun. Tail of $DOCKERD_LOG:" >&2
    # overlay2 works on this VM's ext4 root; nested setups (overlayfs root inside a container)
    # refuse it, and vfs always works there, only slower and bigger.
    elif _start_dockerd || _start_dockerd --storage-driver=vfs; then
        echo "ensure-docker: dockerd up, storage driver $(docker info -f '{{.Driver}}')" >&2
        return 0
    else
        echo "ensure-docker: dockerd would not start (default storage driver, then vfs)." \
             "Tail of $DOCKERD_LOG:" >&2
    fi
    tail -n "+$log_start" "$DOCKERD_LOG" 2>/dev/null | tail -n 30 >&2 || true
    return 1
}

# Only an enabled entry with the F flag works inside containers: the kernel opens the interpreter
# at registration time, so a container's rootfs need not contain qemu.
_QEMU_ENTRY=/proc/sys/fs/binfmt_misc/qemu-aarch64
_qemu_ready() {
    [ -e "$_QEMU_ENTRY" ] && grep -qx enabled "$_QEMU_ENTRY" && grep -q '^flags:.*F' "$_QEMU_ENTRY"
}

# Run linux/arm64 containers and arm64 debootstrap through qemu on an x86_64 host.
ensure_arm64_emulation() {
    [ "$(uname -m)" = aarch64 ] && return 0
    _qemu_ready && return 0
    if [ ! -x /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
        echo "ensure-docker: installing qemu-user-static binfmt-support" >&2
        apt_install qemu-user-static binfmt-support
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || {
            echo "ensure-docker: cannot mount binfmt_misc (unprivileged container?)" >&2
            return 1
        }
    fi
    # A stale entry (no F flag, e.g. from a distro's qemu-user, or disabled) is replaced, not kept.
    [ ! -e "$_QEMU_ENTRY" ] || echo -1 | as_root tee "$_QEMU_ENTRY" >/dev/null
    # Debian's qemu-user-static ships its binfmt spec with fix_binary=yes, i.e. the F flag.
    as_root update-binfmts --enable qemu-aarch64 || true
    if ! _qemu_ready; then
        # binfmt-support not usable (no spec file, odd distro): write the standard entry ourselves.
        [ ! -e "$_QEMU_ENTRY" ] || echo -1 | as_root tee "$_QEMU_ENTRY" >/dev/null
        printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:FP' \
            | as_root tee /proc/sys/fs/binfmt_misc/register >/dev/null
    fi
    _qemu_ready || {
        echo "ensure-docker: could not register qemu-aarch64 with binfmt_misc (F flag)" >&2
        return 1
    }
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    ensure_docker
    ensure_arm64_emulation
fi
