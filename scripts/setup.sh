#!/usr/bin/env bash
# Installs what lockstep needs on a Debian or Ubuntu machine, and only what is missing:
#   - a Rust toolchain (rustup), if there is no cargo;
#   - the Vulkan loader and Mesa's Vulkan drivers (lavapipe renders on the CPU when the
#     machine has no GPU);
#   - Mesa's EGL/GL (wgpu's GL backend, the fallback and a second test backend);
#   - Xvfb, a virtual X server, and xwd (x11-apps) to take screenshots of it, for the window
#     tests on machines without a display;
#   - iproute2 (`ip netns`), for the launcher tests that make three hosts out of network
#     namespaces;
#   - libudev's headers and pkg-config, which the gamepad crate (gilrs) builds against.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || missing+=(libvulkan1)
ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so.0' || missing+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xwd >/dev/null 2>&1 || missing+=(x11-apps)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists libudev 2>/dev/null || missing+=(libudev-dev)
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
    command -v cc >/dev/null 2>&1 || missing+=(build-essential)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ ! -x "$HOME/.cargo/bin/cargo" ]; then
        echo "setup: installing the Rust toolchain with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    fi
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# Mesa's Wayland support prints "XDG_RUNTIME_DIR is invalid" in shells that have none (root
# shells, CI); give them a private one so the logs show only lockstep's own messages.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d "${TMPDIR:-/tmp}/lockstep-runtime.XXXXXX")"
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
fi
