# Shared by scripts/vm-test and scripts/vm-bench: Debian's 6.1 kernel
# (CONFIG_TLS=m) booted by virtme-ng under QEMU with the host's root
# filesystem read-only, because this machine's kernel has no kernel TLS.
# KVM is not usable here: the CPU is emulated (TCG). Sourced, not run.

vm_skip() {
    printf '\033[1;33mskipped: %s\033[0m\n' "$*"
    exit 0
}

# vm_find: sets VNG and VM_KERNEL, or skips (exit 0) saying what is missing.
vm_find() {
    VNG=$(command -v vng || true)
    [ -n "$VNG" ] || vm_skip "vng is not installed (pip install virtme-ng; scripts/test installs it)"
    command -v qemu-system-x86_64 >/dev/null ||
        vm_skip "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    command -v busybox >/dev/null || vm_skip "busybox is not installed (apt-get install busybox-static)"
    VM_KERNEL=$(find /boot -maxdepth 1 -name 'vmlinuz-6.1.*-amd64' | sort -V | tail -n 1)
    [ -n "$VM_KERNEL" ] || vm_skip "no Debian 6.1 kernel image in /boot (apt-get install linux-image-amd64)"
    [ -r "$VM_KERNEL" ] || vm_skip "$VM_KERNEL is not readable"
}

# The start of every guest script: kernel TLS and TUN loaded, the TUN
# device node made, descriptors for many sessions.
VM_GUEST_SETUP='echo "guest: kernel $(uname -r)"
modprobe tls || echo "guest: modprobe tls failed"
modprobe tun || echo "guest: modprobe tun failed"
mkdir -p /dev/net
[ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200
ulimit -n 65536 2>/dev/null || true'

# vm_run TIMEOUT LOG COMMAND [VNG OPTION...]: boots the kernel (2 CPUs,
# $VM_MEMORY of memory, 2G unless set), runs COMMAND in it, and writes the console, without carriage
# returns, to LOG. Returns vng's status (124 or 137: TIMEOUT seconds
# passed).
vm_run() {
    local timeout_s=$1 log=$2 command=$3
    shift 3
    local status=0
    # Through a pipe: QEMU writes to its own open file.
    timeout --kill-after=10 "$timeout_s" "$VNG" --disable-kvm -r "$VM_KERNEL" --memory "${VM_MEMORY:-2G}" --cpus 2 \
        "$@" --exec "$command" </dev/null 2>&1 | tr -d '\r' >"$log" || status=$?
    return "$status"
}
