#!/usr/bin/env bash
# Install what tests/netns/ needs to make hosts out of network namespaces on this machine:
# sshd (Debian's openssh-server, which brings the ssh client too) and iproute2 (`ip`), plus
# util-linux (`unshare`, `nsenter`) and procps (`ps`). Idempotent and quiet: it does nothing
# when everything is there, runs `apt-get update` only when a package is missing, and prints
# only errors. Needs root and apt-get; elsewhere it says what is missing and fails.
#
#   bash tests/netns/install-deps.sh
set -euo pipefail

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
{ command -v unshare && command -v nsenter; } >/dev/null 2>&1 || missing+=(util-linux)
command -v ps >/dev/null 2>&1 || missing+=(procps)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
# Each package once, in order.
packages=()
for package in "${missing[@]}"; do
    case " ${packages[*]-} " in *" $package "*) ;; *) packages+=("$package") ;; esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing ${packages[*]}; run this script as root to install them." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: missing ${packages[*]} and there is no apt-get to install them." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends "${packages[@]}" \
        >/dev/null
}
# Without package lists (a fresh image) or with stale ones the install fails: update, retry.
if ! apt_install 2>/dev/null; then
    apt-get update -q -o DPkg::Lock::Timeout=120 >/dev/null
    apt_install
fi
# Debian's package starts sshd where a service manager runs; the harness runs its own sshd
# per namespace and needs none on the machine itself, but leaves an existing one alone.
