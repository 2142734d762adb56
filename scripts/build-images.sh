#!/usr/bin/env bash
# Build the local stand-ins for the Lambda build images (no image registry is reachable here):
# Debian rootfs made with debootstrap, cached as tarballs, then loaded into Docker. Idempotent.
#
#   scripts/build-images.sh                    # all images
#   scripts/build-images.sh python3.11:arm64   # some: name, name:arch or the full tag
#
# Env: PLL_DEV_CACHE (cache dir), PLL_DEBIAN_MIRROR (else the host's apt mirror), PLL_JOBS.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=ensure-docker.sh
source "$HERE/ensure-docker.sh"

PREFIX=pulumi-lambda-layers-dev
IMAGE_DIR="$PLL_DEV_CACHE/images"
LOG_DIR="$PLL_DEV_CACHE/logs"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# debootstrap is mostly download + dpkg, one core each; the emulated arm64 one is the long pole.
JOBS="${PLL_JOBS:-$(nproc)}"

# name  arch  suite  packages... The arm64 ones come first so the amd64 ones overlap with them.
# trixie's nodejs is 20.x (checked after the build), which is why the node image is trixie.
IMAGES=(
    "python3.11 arm64  bookworm python3 python3-pip ca-certificates"
    "nodejs20.x arm64  trixie   nodejs npm ca-certificates"
    "python3.11 x86_64 bookworm python3 python3-pip ca-certificates"
    "python3.13 x86_64 trixie   python3 python3-pip ca-certificates"
    "nodejs20.x x86_64 trixie   nodejs npm ca-certificates"
)

# The host's own Debian mirror is the one its network allows; plain deb.debian.org elsewhere.
debian_mirror() {
    if [ -n "${PLL_DEBIAN_MIRROR:-}" ]; then echo "$PLL_DEBIAN_MIRROR"; return; fi
    local codename mirror=""
    codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
    if [ -n "$codename" ]; then
        mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
            | awk -v c="$codename" '$2 == c && $1 ~ /debian/ {print $1; exit}')"
    fi
    echo "${mirror:-http://deb.debian.org/debian/}"
}

ensure_tools() {
    command -v debootstrap >/dev/null || apt_install debootstrap
    [ -r "$KEYRING" ] || apt_install debian-archive-keyring  # Ubuntu hosts lack Debian's keys
}

# Unmount whatever a failed debootstrap left mounted before deleting, or rm would walk into /proc.
remove_tree() {
    local dir=$1
    [ -d "$dir" ] || return 0
    local mnt
    findmnt -rn -o TARGET | { grep -F "$dir/" || true; } | sort -r \
        | while read -r mnt; do as_root umount -l "$mnt"; done
    as_root rm -rf --one-file-system "$dir"
}

# Fails unless the rootfs runs what the tests and builders need, as a non-root uid with HOME=/tmp.
check_rootfs() {
    local root=$1 name=$2 got want
    local as_user=(as_root chroot --userspec=1000:1000 "$root" env HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin)
    case "$name" in
        python*)
            want="${name#python}"
            got="$("${as_user[@]}" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
            "${as_user[@]}" python3 -m pip --version
            ;;
        nodejs*)
            want="${name#nodejs}"; want="${want%.x}"
            got="$("${as_user[@]}" node -p 'process.versions.node.split(".")[0]')"
            "${as_user[@]}" npm --version
            ;;
    esac
    if [ "$got" != "$want" ]; then
        echo "rootfs for $name has version $got, not $want: change its suite in IMAGES" >&2
        return 1
    fi
}

# debootstrap into a temp dir next to the cache; the tarball appears only once complete and checked.
build_tarball() {
    local name=$1 arch=$2 suite=$3 pkgs=$4 tarball=$5 darch script=()
    case "$arch" in x86_64) darch=amd64 ;; arm64) darch=arm64 ;; esac
    WORK="$(mktemp -d "$IMAGE_DIR/.build-$name-$arch.XXXXXX")"
    local root="$WORK/rootfs"
    # An older debootstrap may not know a newer suite; every modern suite uses the sid script.
    [ -e "/usr/share/debootstrap/scripts/$suite" ] || script=(/usr/share/debootstrap/scripts/sid)
    # Two stages even for the native arch: the foreign arch needs them anyway (the second runs
    # through qemu), and the gap lets dpkg skip its per-file fsync, the slow part on a VM disk.
    as_root debootstrap --foreign --variant=minbase --arch="$darch" --keyring="$KEYRING" \
        "$suite" "$root" "$MIRROR" "${script[@]}"
    as_root mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    echo force-unsafe-io | as_root tee "$root/etc/dpkg/dpkg.cfg.d/zz-build-unsafe-io" >/dev/null
    as_root chroot "$root" /debootstrap/debootstrap --second-stage
    # apt, not debootstrap --include: debootstrap's resolver ignores virtual packages and leaves
    # npm unconfigured. The lists debootstrap fetched are enough; no `apt-get update` needed.
    # shellcheck disable=SC2086  # pkgs is a word list
    as_root chroot "$root" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 $pkgs
    # Images stay small and never carry stale package lists; `apt-get update` first in them.
    as_root sh -c 'cd "$1" && rm -rf var/lib/apt/lists/* var/cache/apt/*.bin \
        var/cache/apt/archives/*.deb usr/share/doc/* usr/share/man/* usr/share/info/* \
        etc/dpkg/dpkg.cfg.d/zz-build-unsafe-io && find var/log -type f -delete' strip "$root"
    check_rootfs "$root" "$name"
    as_root tar --numeric-owner --one-file-system -C "$root" -cf "$WORK/rootfs.tar" .
    mv "$WORK/rootfs.tar" "$tarball"
}

import_tarball() {
    local tarball=$1 tag=$2 arch=$3 ctx
    local env='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8'
    if [ "$arch" = x86_64 ]; then
        docker import --change "ENV $env" --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null
        return
    fi
    # `docker import` records the host arch whatever --platform says (engine 20.10), and an image
    # marked amd64 makes `docker run --platform linux/arm64` go to a registry. FROM scratch + ADD
    # under the legacy builder records the platform given; it costs a few seconds more.
    ctx="$(mktemp -d "$IMAGE_DIR/.ctx-$arch.XXXXXX")"
    ln "$tarball" "$ctx/rootfs.tar"
    printf 'FROM scratch\nADD rootfs.tar /\nENV %s\nCMD ["/bin/bash"]\n' "$env" >"$ctx/Dockerfile"
    local out rc=0
    # Its stderr always carries a deprecation notice: show it only when the build fails.
    out="$(DOCKER_BUILDKIT=0 docker build -q --platform "linux/$arch" -t "$tag" "$ctx" 2>&1)" || rc=$?
    rm -rf "$ctx"
    [ "$rc" -eq 0 ] || { echo "$out" >&2; return "$rc"; }
}

# debootstrap's own log names the failing package, and it lives in the dir about to be removed.
on_job_exit() {
    local rc=$1 key=$2 dlog="$WORK/rootfs/debootstrap/debootstrap.log"
    if [ "$rc" -ne 0 ] && [ -n "$WORK" ] && [ -f "$dlog" ]; then
        echo "--- tail of $dlog"
        tail -n 20 "$dlog"
    fi
    [ -z "$WORK" ] || remove_tree "$WORK"
    echo "$rc" >"$LOG_DIR/$key.rc"
}

# One image, in a background subshell with its own log; leaves its exit status in a .rc file.
build_job() {
    local key=$1 name=$2 arch=$3 suite=$4 pkgs=$5 tag=$6 tarball=$7 start=$SECONDS
    WORK=""
    trap 'rc=$?; on_job_exit "$rc" "$key"' EXIT
    build_tarball "$name" "$arch" "$suite" "$pkgs" "$tarball"
    import_tarball "$tarball" "$tag" "$arch"
    echo "built $tag in $((SECONDS - start)) s"
}

selected() {  # selected NAME ARCH ARGS...: no args means all
    local name=$1 arch=$2 want; shift 2
    [ $# -eq 0 ] && return 0
    for want in "$@"; do
        case "$want" in "$name" | "$name:$arch" | "$PREFIX/$name:$arch") return 0 ;; esac
    done
    return 1
}

main() {
    local spec name arch suite pkgs tag tarball key need_arm=0 tools_ready=0 queued=() failed=0
    local matched=0
    for spec in "${IMAGES[@]}"; do
        read -r name arch suite pkgs <<<"$spec"
        selected "$name" "$arch" "$@" || continue
        matched=1
        [ "$arch" = x86_64 ] || need_arm=1
    done
    if [ "$matched" -eq 0 ]; then  # a typo must not look like "nothing to do"
        echo "build-images: no image matches: $*; known:" >&2
        printf '  %s\n' "${IMAGES[@]}" >&2
        return 2
    fi
    ensure_docker
    [ "$need_arm" -eq 0 ] || ensure_arm64_emulation
    mkdir -p "$IMAGE_DIR" "$LOG_DIR"

    for spec in "${IMAGES[@]}"; do
        read -r name arch suite pkgs <<<"$spec"
        selected "$name" "$arch" "$@" || continue
        tag="$PREFIX/$name:$arch" tarball="$IMAGE_DIR/$name-$arch.tar" key="$name-$arch"
        if docker image inspect "$tag" >/dev/null 2>&1; then
            echo "ok      $tag (exists)"
        elif [ -f "$tarball" ]; then
            import_tarball "$tarball" "$tag" "$arch"
            echo "ok      $tag (imported from $tarball)"
        else
            if [ "$tools_ready" -eq 0 ]; then ensure_tools; MIRROR="$(debian_mirror)"; tools_ready=1; fi
            while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
            echo "build   $tag from $suite via $MIRROR (log: $LOG_DIR/$key.log)"
            rm -f "$LOG_DIR/$key.rc"
            ( build_job "$key" "$name" "$arch" "$suite" "$pkgs" "$tag" "$tarball" ) >"$LOG_DIR/$key.log" 2>&1 &
            queued+=("$key")
        fi
    done
    wait

    for key in "${queued[@]}"; do
        if [ "$(cat "$LOG_DIR/$key.rc" 2>/dev/null)" = 0 ]; then
            echo "ok      $(tail -n 1 "$LOG_DIR/$key.log")"
        else
            failed=1
            echo "FAILED  $key; tail of $LOG_DIR/$key.log:" >&2
            tail -n 30 "$LOG_DIR/$key.log" | sed 's/^/    /' >&2
        fi
    done
    return "$failed"
}

main "$@"
